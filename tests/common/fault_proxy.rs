//! A fault-injecting TCP proxy, for tests only. It stands between `ingot`
//! and Glance and breaks or slows connections on demand: a fault a real
//! server cannot produce on demand, and the only way to test the retry,
//! verify and cleanup paths of `ingot publish` against a real Glance.
//!
//! Plain std threads: two per connection, one per direction. The controls
//! are atomics that the test changes while `ingot` runs.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Glance's address in the playground in `dir` (`INGOT_GLANCE_PORT` in
/// `ports.env`, 9292 when the file does not say).
pub fn glance_address(dir: &Path) -> SocketAddr {
    let port = std::fs::read_to_string(dir.join("ports.env"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("INGOT_GLANCE_PORT=")?.parse().ok())
        })
        .unwrap_or(9292);
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

struct State {
    upstream: SocketAddr,
    stop: AtomicBool,
    /// Client→server bytes after which a connection is cut; `u64::MAX`: never.
    cut_after: AtomicU64,
    /// How many more connections may be cut.
    cuts_left: AtomicU32,
    /// Client→server bytes per second; 0: as fast as it goes.
    throttle: AtomicU64,
    seen: AtomicU32,
    cut: AtomicU32,
    /// Both sockets of every open connection, by number, so that
    /// dropping the proxy can end the threads blocked on them.
    open: Mutex<HashMap<u32, (TcpStream, TcpStream)>>,
}

impl FaultProxy {
    /// A proxy on 127.0.0.1 (a free port) to `upstream`, passing
    /// everything through until told otherwise.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fault proxy: bind");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream,
            stop: AtomicBool::new(false),
            cut_after: AtomicU64::new(u64::MAX),
            cuts_left: AtomicU32::new(0),
            throttle: AtomicU64::new(0),
            seen: AtomicU32::new(0),
            cut: AtomicU32::new(0),
            open: Mutex::new(HashMap::new()),
        });
        let s = state.clone();
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(client) = client {
                    let n = s.seen.fetch_add(1, Ordering::SeqCst);
                    let s = s.clone();
                    std::thread::spawn(move || {
                        connection(&s, n, client);
                        s.open.lock().unwrap().remove(&n);
                    });
                }
            }
        });
        FaultProxy {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`, for an `image_endpoint_override`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `times` connections whose client→server traffic exceeds
    /// `bytes` are closed abruptly, both ways, once `bytes` went through.
    /// Only an upload sends that much, so API calls pass untouched.
    /// `u32::MAX` times: every such connection, for good.
    pub fn cut_after(&self, bytes: u64, times: u32) {
        self.state.cuts_left.store(times, Ordering::SeqCst);
        self.state.cut_after.store(bytes, Ordering::SeqCst);
    }

    /// Client→server traffic of every connection is slowed to about
    /// `bytes_per_sec`; 0 lifts the limit. Applies to running connections.
    pub fn throttle(&self, bytes_per_sec: u64) {
        self.state.throttle.store(bytes_per_sec, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn seen(&self) -> u32 {
        self.state.seen.load(Ordering::SeqCst)
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u32 {
        self.state.cut.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // The accept loop blocks in accept(): one last connection wakes it.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, (a, b)) in self.state.open.lock().unwrap().drain() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

fn connection(s: &State, n: u32, client: TcpStream) {
    let Ok(server) = TcpStream::connect(s.upstream) else {
        // Glance is down: the client sees its connection closed, as it
        // would see a refused one.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    {
        let mut open = s.open.lock().unwrap();
        if s.stop.load(Ordering::SeqCst) {
            // Accepted while the proxy was being dropped, after it closed
            // the connections it knew of.
            return;
        }
        open.insert(n, (c3, s3));
    }
    // Server→client: passed through as it comes.
    let back = std::thread::spawn(move || {
        let (mut from, to) = (s2, c2);
        let _ = std::io::copy(&mut from, &mut &to);
        let _ = to.shutdown(Shutdown::Write);
    });
    upstream(s, client, server);
    let _ = back.join();
}

/// Client→server, where the faults are: count, throttle, cut.
fn upstream(s: &State, mut client: TcpStream, mut server: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let rate = s.throttle.load(Ordering::SeqCst);
        // Small reads when throttled, so that the pace is even.
        let want = if rate > 0 {
            buf.len().min((rate / 20).max(1) as usize)
        } else {
            buf.len()
        };
        let n = match client.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let limit = s.cut_after.load(Ordering::SeqCst);
        if total.saturating_add(n as u64) > limit && claim_cut(s) {
            // Exactly `limit` bytes reach the server, then both sides
            // lose the connection mid-request.
            let head = (limit.saturating_sub(total)) as usize;
            let _ = server.write_all(&buf[..head]);
            let _ = server.flush();
            let _ = server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            s.cut.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
        total += n as u64;
        if rate > 0 {
            // A pause per read, not a pace kept from the start: a pooled
            // connection that sat idle must not earn a burst.
            std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

fn claim_cut(s: &State) -> bool {
    s.cuts_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
            0 => None,
            u32::MAX => Some(u32::MAX),
            n => Some(n - 1),
        })
        .is_ok()
}
