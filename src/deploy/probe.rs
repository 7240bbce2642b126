//! The public TCP ports, probed from the runner: the guest's own boot
//! checks say a service listens, this says the cloud lets the world reach
//! it (security group, router, the floating IP's NAT). The journal's
//! author found 10000 declared as TCP in the web UI only when calls failed.
//!
//! A runner often cannot reach a new server at all (a private network, CI
//! behind NAT): a port that times out or whose network is unreachable is
//! "not reachable from here", which skips the probe rather than failing a
//! release. A refusal is an answer: something at that address said no. A
//! port that times out while another of the same address answered is
//! filtered, which is a failure too. UDP has no answer to wait for, so
//! only TCP ports are probed.

use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What one connect attempt said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Open,
    Refused,
    /// Timed out, or no route: says nothing about the server.
    Silent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortProbe {
    pub address: IpAddr,
    pub port: u16,
    pub answer: Answer,
}

/// What the probes of one address mean for a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every probed port answered.
    Reachable { ports: Vec<u16> },
    /// Nothing answered at all: the address is not reachable from the
    /// runner, and the probe says nothing either way.
    Skipped,
    /// Some ports answered, these did not (refused, or filtered while
    /// others answered).
    Closed {
        open: Vec<u16>,
        closed: Vec<PortProbe>,
    },
    /// No TCP port to probe.
    Nothing,
}

/// Connects to every port of `address` at once, each bounded by `timeout`.
pub async fn probe(address: IpAddr, ports: &[u16], timeout: Duration) -> Vec<PortProbe> {
    let attempts = ports.iter().map(|&port| async move {
        let answer = match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect(SocketAddr::new(address, port)),
        )
        .await
        {
            Ok(Ok(_)) => Answer::Open,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Answer::Refused,
            Ok(Err(_)) | Err(_) => Answer::Silent,
        };
        PortProbe {
            address,
            port,
            answer,
        }
    });
    futures_join_all(attempts).await
}

/// The probes of one address, judged.
pub fn judge(probes: &[PortProbe]) -> Verdict {
    if probes.is_empty() {
        return Verdict::Nothing;
    }
    let open: Vec<u16> = probes
        .iter()
        .filter(|p| p.answer == Answer::Open)
        .map(|p| p.port)
        .collect();
    let refused = probes.iter().any(|p| p.answer == Answer::Refused);
    if open.len() == probes.len() {
        return Verdict::Reachable { ports: open };
    }
    if open.is_empty() && !refused {
        return Verdict::Skipped;
    }
    Verdict::Closed {
        open,
        closed: probes
            .iter()
            .filter(|p| p.answer != Answer::Open)
            .cloned()
            .collect(),
    }
}

/// `443/tcp refused, 80/tcp filtered` — for an error message.
pub fn describe(closed: &[PortProbe]) -> String {
    closed
        .iter()
        .map(|p| {
            format!(
                "{}/tcp {}",
                p.port,
                match p.answer {
                    Answer::Refused => "refused",
                    Answer::Silent => "filtered (no answer while other ports answered)",
                    Answer::Open => "open",
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// tokio has no join_all of its own and one call does not earn the
/// `futures` crate: a JoinSet keeps the order by index.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut n = 0;
    for (i, f) in futures.enumerate() {
        set.spawn(async move { (i, f.await) });
        n += 1;
    }
    let mut out: Vec<Option<F::Output>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, v)) = joined {
            out[i] = Some(v);
        }
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A port nothing listens on: bound, then released.
    fn free_port() -> u16 {
        std::net::TcpListener::bind((LOCAL, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn an_open_port_and_a_refused_one() {
        let listener = tokio::net::TcpListener::bind((LOCAL, 0)).await.unwrap();
        let open = listener.local_addr().unwrap().port();
        let closed = free_port();
        let probes = probe(LOCAL, &[open, closed], Duration::from_secs(2)).await;
        assert_eq!(probes[0].answer, Answer::Open);
        assert_eq!(probes[1].answer, Answer::Refused);
        let v = judge(&probes);
        let Verdict::Closed { open: o, closed: c } = &v else {
            panic!("{v:?}")
        };
        assert_eq!(o, &vec![open]);
        assert_eq!(describe(c), format!("{closed}/tcp refused"));
    }

    #[tokio::test]
    async fn every_port_open_is_reachable() {
        let a = tokio::net::TcpListener::bind((LOCAL, 0)).await.unwrap();
        let b = tokio::net::TcpListener::bind((LOCAL, 0)).await.unwrap();
        let ports = [
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        ];
        let v = judge(&probe(LOCAL, &ports, Duration::from_secs(2)).await);
        assert_eq!(
            v,
            Verdict::Reachable {
                ports: ports.to_vec()
            }
        );
    }

    #[test]
    fn silence_everywhere_skips_and_silence_beside_an_answer_fails() {
        let p = |port, answer| PortProbe {
            address: LOCAL,
            port,
            answer,
        };
        assert_eq!(
            judge(&[p(80, Answer::Silent), p(443, Answer::Silent)]),
            Verdict::Skipped
        );
        let v = judge(&[p(80, Answer::Open), p(443, Answer::Silent)]);
        let Verdict::Closed { closed, .. } = v else {
            panic!()
        };
        assert_eq!(
            describe(&closed),
            "443/tcp filtered (no answer while other ports answered)"
        );
        // A refusal alone is an answer: the address is reachable.
        assert!(matches!(
            judge(&[p(80, Answer::Refused), p(443, Answer::Silent)]),
            Verdict::Closed { .. }
        ));
        assert_eq!(judge(&[]), Verdict::Nothing);
    }

    #[tokio::test]
    async fn an_unroutable_address_is_silent_within_the_timeout() {
        // TEST-NET-1 through a route that may or may not exist here: either
        // no route (at once) or no answer (the timeout); never a hang.
        let started = std::time::Instant::now();
        let probes = probe(
            IpAddr::V6("100::1".parse().unwrap()),
            &[443],
            Duration::from_millis(500),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_ne!(probes[0].answer, Answer::Open);
    }
}
