//! The kept address of a deployment: one floating IP, allocated once from
//! an external network and kept across releases, so that DNS points at it
//! once and a deploy or a rollback only moves it from one server's port to
//! the other's.
//!
//! - [`ensure`] allocates it, or finds the one already allocated: by its
//!   tags (`ingot`, `ingot-deployment:<name>`), else by its description
//!   `ingot deployment <name>` (set in the create request itself, unlike
//!   tags, so it finds an address whose create answer was lost). Never
//!   two.
//! - [`point_at`] moves it to a server and reads it back.
//! - [`release`] gives it back to the cloud (`destroy --release-address`).
//! - [`server_address`]: on a network whose ports get public addresses
//!   themselves (Infomaniak's `ext-net1`) there is no floating IP; this
//!   says which addresses a server has, for DNS.

use super::secgroup::{deployment_tag, INGOT_TAG};
use crate::cloud::network::{FloatingIp, NetworkService, NewFloatingIp, Port, Tagged};
use crate::cloud::CloudError;
use crate::model::names::{DeploymentName, Rule as _};
use std::fmt;
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

/// A deployment's floating IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub id: String,
    pub address: String,
    /// The port it points at, if any.
    pub port_id: Option<String>,
    /// Allocated by this call.
    pub created: bool,
}

/// What [`point_at`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    /// The port it pointed at before, if any (the same as `to_port` when
    /// it was already there).
    pub from_port: Option<String>,
    pub to_port: String,
    pub address: String,
    /// From the request to Neutron reading back the new port.
    pub seconds: f64,
    /// Neutron's status of the address as read back: `ACTIVE` once the
    /// router forwards to it, `DOWN` before (and always, on a cloud
    /// without an L3 agent such as the playground).
    pub status: String,
}

#[derive(Debug, Error)]
pub enum AddressError {
    #[error("{0}")]
    Deployment(String),
    #[error("external network `{given}` does not exist{}; external networks: {}",
        suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        list(external))]
    UnknownNetwork {
        given: String,
        suggestion: Option<String>,
        external: Vec<String>,
    },
    #[error("network `{given}` is not external, so it has no floating IPs: its servers' ports have their own addresses (see their fixed IPs); floating IPs come from: {}", list(external))]
    NotExternal {
        given: String,
        external: Vec<String>,
    },
    #[error("deployment {deployment} has {} kept addresses ({}); release all but one", ids.len(), ids.join(", "))]
    Several {
        deployment: String,
        ids: Vec<String>,
    },
    #[error("deployment {deployment} keeps {address} on network {has}, not on `{wanted}`; release it first (destroy --release-address) to change networks")]
    OtherNetwork {
        deployment: String,
        address: String,
        has: String,
        wanted: String,
    },
    #[error("floating IP {id} does not exist (released meanwhile?)")]
    Gone { id: String },
    #[error("server {server} has no port{}", network.as_ref().map(|n| format!(" on network {n}")).unwrap_or_default())]
    NoPort {
        server: String,
        network: Option<String>,
    },
    #[error("server {server} has {} ports ({}); say which network the address goes to", ports.len(), ports.join(", "))]
    SeveralPorts {
        server: String,
        /// `PORT on network NETWORK` for each.
        ports: Vec<String>,
    },
    #[error("{address} was moved to port {port}, but after {seconds:.0} s Neutron still reports it on {}", now.as_deref().unwrap_or("no port"))]
    NotMoved {
        address: String,
        port: String,
        seconds: f64,
        now: Option<String>,
    },
    #[error("{what}: {source}")]
    Cloud {
        what: String,
        /// Boxed: a `CloudError` is large, and the error is returned on
        /// every path.
        #[source]
        source: Box<CloudError>,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

impl AddressError {
    /// Input the user must fix (exit code 2), as opposed to a cloud failure.
    pub fn is_input(&self) -> bool {
        match self {
            AddressError::Deployment(_)
            | AddressError::UnknownNetwork { .. }
            | AddressError::NotExternal { .. }
            | AddressError::OtherNetwork { .. }
            | AddressError::SeveralPorts { .. } => true,
            AddressError::Cloud { source, .. } => source.is_input(),
            _ => false,
        }
    }
}

fn cloud(what: impl fmt::Display) -> impl FnOnce(CloudError) -> AddressError {
    let what = what.to_string();
    move |source| AddressError::Cloud {
        what,
        source: Box::new(source),
    }
}

fn check_deployment(deployment: &str) -> Result<(), AddressError> {
    DeploymentName::check(deployment).map_err(AddressError::Deployment)
}

/// The description every kept address carries.
fn description(deployment: &str) -> String {
    format!("ingot deployment {deployment}")
}

fn kept(f: FloatingIp, created: bool) -> Kept {
    Kept {
        id: f.id,
        address: f.floating_ip_address,
        port_id: f.port_id,
        created,
    }
}

/// The deployment's floating IP as Neutron has it.
async fn find_raw<N: NetworkService>(
    neutron: &N,
    deployment: &str,
) -> Result<Option<FloatingIp>, AddressError> {
    let what = format!("looking for the kept address of deployment {deployment}");
    let tags = format!("{INGOT_TAG},{}", deployment_tag(deployment));
    let mut found = neutron
        .floating_ips(&[("tags", &tags)])
        .await
        .map_err(cloud(&what))?;
    if found.is_empty() {
        // Allocated, but its tags were never set (the create answer was
        // lost, or the run stopped in between). Not one tagged for another
        // deployment that someone described like ours.
        let desc = description(deployment);
        found = neutron
            .floating_ips(&[("description", &desc)])
            .await
            .map_err(cloud(&what))?
            .into_iter()
            .filter(|f| f.description == desc)
            .filter(|f| !f.tags.iter().any(|t| t.starts_with("ingot-deployment:")))
            .collect();
    }
    if found.len() > 1 {
        let mut ids: Vec<String> = found.into_iter().map(|f| f.id).collect();
        ids.sort();
        return Err(AddressError::Several {
            deployment: deployment.into(),
            ids,
        });
    }
    Ok(found.pop())
}

/// The deployment's kept address, if it has one.
pub async fn find<N: NetworkService>(
    neutron: &N,
    deployment: &str,
) -> Result<Option<Kept>, AddressError> {
    check_deployment(deployment)?;
    Ok(find_raw(neutron, deployment).await?.map(|f| kept(f, false)))
}

/// The external network named (or with the id) `given`.
async fn resolve_external<N: NetworkService>(
    neutron: &N,
    given: &str,
) -> Result<(String, String), AddressError> {
    let external = neutron
        .networks(&[("router:external", "true")])
        .await
        .map_err(cloud("listing the external networks"))?;
    if let Some(n) = external
        .iter()
        .find(|n| n.id == given)
        .or_else(|| external.iter().find(|n| n.name == given))
    {
        return Ok((n.id.clone(), n.name.clone()));
    }
    let mut names: Vec<String> = external.iter().map(|n| n.name.clone()).collect();
    names.sort();
    // A network that exists but is not external is a different mistake
    // from a typo: the user has a direct public network in mind.
    let named = neutron
        .networks(&[("name", given)])
        .await
        .map_err(cloud(format_args!("looking for network {given}")))?;
    if named.iter().any(|n| n.name == given) {
        return Err(AddressError::NotExternal {
            given: given.into(),
            external: names,
        });
    }
    Err(AddressError::UnknownNetwork {
        given: given.into(),
        suggestion: crate::suggest::did_you_mean(given, &names),
        external: names,
    })
}

/// Adds ingot's tags the address lacks.
async fn tag<N: NetworkService>(
    neutron: &N,
    f: &FloatingIp,
    deployment: &str,
) -> Result<(), AddressError> {
    for t in [INGOT_TAG.to_string(), deployment_tag(deployment)] {
        if !f.tags.contains(&t) {
            neutron
                .add_tag(Tagged::FloatingIp, &f.id, &t)
                .await
                .map_err(cloud(format_args!(
                    "tagging floating IP {} ({})",
                    f.floating_ip_address, f.id
                )))?;
        }
    }
    Ok(())
}

/// The deployment's kept address: the one it has, or a new one from
/// `external_network` (a name or an id). One it has on another network is
/// an error, not a second address.
pub async fn ensure<N: NetworkService>(
    neutron: &N,
    deployment: &str,
    external_network: &str,
) -> Result<Kept, AddressError> {
    check_deployment(deployment)?;
    let (network_id, network_name) = resolve_external(neutron, external_network).await?;
    if let Some(f) = find_raw(neutron, deployment).await? {
        if f.floating_network_id != network_id {
            // Its network by name if Neutron still shows it, else by id.
            let has = neutron
                .networks(&[("id", &f.floating_network_id)])
                .await
                .ok()
                .and_then(|n| n.into_iter().next())
                .map_or(f.floating_network_id, |n| n.name);
            return Err(AddressError::OtherNetwork {
                deployment: deployment.into(),
                address: f.floating_ip_address,
                has,
                wanted: external_network.into(),
            });
        }
        tag(neutron, &f, deployment).await?;
        return Ok(kept(f, false));
    }
    let new = NewFloatingIp {
        network_id: network_id.clone(),
        description: Some(description(deployment)),
        port_id: None,
    };
    let f = match neutron.create_floating_ip(&new).await {
        Ok(f) => f,
        Err(e) => match find_raw(neutron, deployment).await {
            // The answer was lost, the address made: take it.
            Ok(Some(f)) => f,
            _ => {
                return Err(cloud(format_args!(
                    "allocating an address for deployment {deployment} on {network_name}"
                ))(e))
            }
        },
    };
    tag(neutron, &f, deployment).await?;
    Ok(kept(f, true))
}

/// The floating IP with this id.
async fn floating_ip<N: NetworkService>(neutron: &N, id: &str) -> Result<FloatingIp, AddressError> {
    neutron
        .floating_ips(&[("id", id)])
        .await
        .map_err(cloud(format_args!("reading floating IP {id}")))?
        .into_iter()
        .find(|f| f.id == id)
        .ok_or_else(|| AddressError::Gone { id: id.into() })
}

/// The server's ports (on `network_id` if given).
async fn server_ports<N: NetworkService>(
    neutron: &N,
    server_id: &str,
    network_id: Option<&str>,
) -> Result<Vec<Port>, AddressError> {
    let mut filters = vec![("device_id", server_id)];
    if let Some(n) = network_id {
        filters.push(("network_id", n));
    }
    let mut ports: Vec<Port> = neutron
        .ports(&filters)
        .await
        .map_err(cloud(format_args!(
            "listing the ports of server {server_id}"
        )))?
        .into_iter()
        // Exact, whatever filters the cloud ignores.
        .filter(|p| p.device_id == server_id && network_id.is_none_or(|n| p.network_id == n))
        .collect();
    ports.sort_by(|a, b| a.id.cmp(&b.id));
    if ports.is_empty() {
        return Err(AddressError::NoPort {
            server: server_id.into(),
            network: network_id.map(str::to_string),
        });
    }
    Ok(ports)
}

/// Points the kept address `kept_id` at the server's port (the one on
/// `network_id` if it has several) and reads it back until Neutron
/// reports that port, for at most `wait`. Moving it takes it from any
/// other port: that is the switch from blue to green, or back.
pub async fn point_at<N: NetworkService>(
    neutron: &N,
    kept_id: &str,
    server_id: &str,
    network_id: Option<&str>,
    wait: Duration,
) -> Result<Moved, AddressError> {
    let start = Instant::now();
    let before = floating_ip(neutron, kept_id).await?;
    let ports = server_ports(neutron, server_id, network_id).await?;
    if ports.len() > 1 {
        return Err(AddressError::SeveralPorts {
            server: server_id.into(),
            ports: ports
                .iter()
                .map(|p| format!("{} on network {}", p.id, p.network_id))
                .collect(),
        });
    }
    let to_port = ports[0].id.clone();
    let address = before.floating_ip_address.clone();
    if before.port_id.as_deref() != Some(to_port.as_str()) {
        neutron
            .associate_floating_ip(kept_id, &to_port)
            .await
            .map_err(cloud(format_args!(
                "pointing {address} at port {to_port} of server {server_id}"
            )))?;
    }
    // The PUT's answer is Neutron's word; the read-back is what every other
    // client will see.
    let mut pause = Duration::from_millis(250);
    loop {
        let now = floating_ip(neutron, kept_id).await?;
        let seconds = start.elapsed().as_secs_f64();
        if now.port_id.as_deref() == Some(to_port.as_str()) {
            return Ok(Moved {
                from_port: before.port_id,
                to_port,
                address,
                seconds,
                status: now.status,
            });
        }
        if start.elapsed() + pause > wait {
            return Err(AddressError::NotMoved {
                address,
                port: to_port,
                seconds,
                now: now.port_id,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Releases the deployment's kept address; the address released, or
/// `None` if it had none.
pub async fn release<N: NetworkService>(
    neutron: &N,
    deployment: &str,
) -> Result<Option<String>, AddressError> {
    check_deployment(deployment)?;
    let Some(f) = find_raw(neutron, deployment).await? else {
        return Ok(None);
    };
    neutron
        .delete_floating_ip(&f.id)
        .await
        .map_err(cloud(format_args!(
            "releasing {} ({}) of deployment {deployment}",
            f.floating_ip_address, f.id
        )))?;
    Ok(Some(f.floating_ip_address))
}

/// The fixed IPs of the server's ports (sorted by port): on a direct
/// public network, the addresses to put in DNS.
pub async fn server_address<N: NetworkService>(
    neutron: &N,
    server_id: &str,
) -> Result<Vec<String>, AddressError> {
    Ok(server_ports(neutron, server_id, None)
        .await?
        .into_iter()
        .flat_map(|p| p.fixed_ips.into_iter().map(|ip| ip.ip_address))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::fake::FakeNeutron;

    fn neutron() -> FakeNeutron {
        let n = FakeNeutron::default();
        n.add_network("ext1", "ext-floating1", true);
        n.add_network("ext2", "ext-floating2", true);
        n.add_network("pub1", "ext-net1", false);
        n.add_network("net1", "ingot-net", false);
        n
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn ensure_allocates_once_tagged_and_described() {
        let n = neutron();
        rt().block_on(async {
            assert_eq!(find(&n, "visio").await.unwrap(), None);
            let a = ensure(&n, "visio", "ext-floating1").await.unwrap();
            assert!(a.created && a.port_id.is_none());
            let b = ensure(&n, "visio", "ext1").await.unwrap();
            assert_eq!((b.id.as_str(), b.created), (a.id.as_str(), false));
            let f = &n.fips()[0];
            assert_eq!(f.tags, ["ingot", "ingot-deployment:visio"]);
            assert_eq!(f.description, "ingot deployment visio");
            assert_eq!(n.fips().len(), 1);
            // Another deployment gets its own.
            let other = ensure(&n, "wiki", "ext-floating1").await.unwrap();
            assert_ne!(other.id, a.id);
            assert_eq!(find(&n, "visio").await.unwrap().unwrap().id, a.id);
        });
    }

    #[test]
    fn a_lost_create_answer_or_failed_tags_never_make_two() {
        let n = neutron();
        n.lose_next_create();
        rt().block_on(async {
            let a = ensure(&n, "visio", "ext-floating1").await.unwrap();
            assert_eq!(n.fips().len(), 1);
            assert_eq!(n.fips()[0].tags, ["ingot", "ingot-deployment:visio"]);
            assert_eq!(a.id, n.fips()[0].id);
        });
        let n = neutron();
        n.fail_tags(true);
        rt().block_on(async {
            assert!(ensure(&n, "visio", "ext-floating1").await.is_err());
            n.fail_tags(false);
            // Found by its description, untagged, before tags are repaired.
            assert!(find(&n, "visio").await.unwrap().is_some());
            let b = ensure(&n, "visio", "ext-floating1").await.unwrap();
            assert!(!b.created);
            assert_eq!(n.fips().len(), 1);
            assert_eq!(n.fips()[0].tags, ["ingot", "ingot-deployment:visio"]);
        });
    }

    #[test]
    fn network_mistakes_are_explained() {
        let n = neutron();
        rt().block_on(async {
            let e = ensure(&n, "visio", "ext-floatingl").await.unwrap_err();
            assert_eq!(
                e.to_string(),
                "external network `ext-floatingl` does not exist (did you mean `ext-floating1`?); external networks: ext-floating1, ext-floating2"
            );
            assert!(e.is_input());
            let e = ensure(&n, "visio", "ext-net1").await.unwrap_err();
            assert_eq!(
                e.to_string(),
                "network `ext-net1` is not external, so it has no floating IPs: its servers' ports have their own addresses (see their fixed IPs); floating IPs come from: ext-floating1, ext-floating2"
            );
            let e = ensure(&n, "visio", "public").await.unwrap_err();
            assert_eq!(
                e.to_string(),
                "external network `public` does not exist; external networks: ext-floating1, ext-floating2"
            );
            let a = ensure(&n, "visio", "ext-floating1").await.unwrap();
            let e = ensure(&n, "visio", "ext-floating2").await.unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("deployment visio keeps {} on network ext-floating1, not on `ext-floating2`; release it first (destroy --release-address) to change networks", a.address)
            );
            assert_eq!(n.fips().len(), 1);
            let e = ensure(&n, "Visio", "ext-floating1").await.unwrap_err();
            assert!(e.is_input() && e.to_string().starts_with("deployment name \"Visio\" is refused"));
        });
    }

    #[test]
    fn two_addresses_for_one_deployment_is_an_error_naming_both() {
        let n = neutron();
        rt().block_on(async {
            for _ in 0..2 {
                n.create_floating_ip(&NewFloatingIp {
                    network_id: "ext1".into(),
                    description: Some("ingot deployment visio".into()),
                    port_id: None,
                })
                .await
                .unwrap();
            }
            let e = find(&n, "visio").await.unwrap_err();
            let ids: Vec<String> = n.fips().iter().map(|f| f.id.clone()).collect();
            assert_eq!(
                e.to_string(),
                format!(
                    "deployment visio has 2 kept addresses ({}, {}); release all but one",
                    ids[0], ids[1]
                )
            );
            assert!(ensure(&n, "visio", "ext-floating1").await.is_err());
            assert_eq!(n.fips().len(), 2, "no third");
        });
    }

    #[test]
    fn point_at_moves_and_reads_back() {
        let n = neutron();
        n.add_port("pa", "net1", "blue", &["10.10.0.5"], &[]);
        n.add_port("pb", "net1", "green", &["10.10.0.6", "2001:db8::6"], &[]);
        rt().block_on(async {
            let a = ensure(&n, "visio", "ext-floating1").await.unwrap();
            let m = point_at(&n, &a.id, "blue", None, Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!((m.from_port, m.to_port.as_str()), (None, "pa"));
            assert_eq!(m.address, a.address);
            // Neutron shows the old port for a while: the read-back waits.
            n.stale_reads(3);
            let m = point_at(&n, &a.id, "green", Some("net1"), Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(
                (m.from_port.as_deref(), m.to_port.as_str()),
                (Some("pa"), "pb")
            );
            assert!(m.seconds >= 0.25 + 0.5 + 1.0, "{}", m.seconds);
            // Already there: no request, same answer.
            let writes = n.calls_that_write();
            let m = point_at(&n, &a.id, "green", None, Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(m.from_port.as_deref(), Some("pb"));
            assert_eq!(n.calls_that_write(), writes);
            assert_eq!(
                find(&n, "visio").await.unwrap().unwrap().port_id.as_deref(),
                Some("pb")
            );
            // A read-back that never comes.
            n.stale_reads(1000);
            let e = point_at(&n, &a.id, "blue", None, Duration::from_secs(5))
                .await
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "{} was moved to port pa, but after 4 s Neutron still reports it on pb",
                    a.address
                )
            );
        });
    }

    #[test]
    fn point_at_needs_one_port() {
        let n = neutron();
        n.add_port("p1", "net1", "two", &["10.10.0.7"], &[]);
        n.add_port("p2", "pub1", "two", &["195.15.242.18"], &[]);
        rt().block_on(async {
            let a = ensure(&n, "visio", "ext-floating1").await.unwrap();
            let wait = Duration::from_secs(1);
            let e = point_at(&n, &a.id, "two", None, wait).await.unwrap_err();
            assert_eq!(
                e.to_string(),
                "server two has 2 ports (p1 on network net1, p2 on network pub1); say which network the address goes to"
            );
            let m = point_at(&n, &a.id, "two", Some("net1"), wait).await.unwrap();
            assert_eq!(m.to_port, "p1");
            let e = point_at(&n, &a.id, "none", Some("net1"), wait).await.unwrap_err();
            assert_eq!(e.to_string(), "server none has no port on network net1");
            let e = point_at(&n, "fip-gone", "two", None, wait).await.unwrap_err();
            assert_eq!(e.to_string(), "floating IP fip-gone does not exist (released meanwhile?)");
            assert_eq!(
                server_address(&n, "two").await.unwrap(),
                ["10.10.0.7", "195.15.242.18"]
            );
            assert_eq!(server_address(&n, "none").await.unwrap_err().to_string(), "server none has no port");
        });
    }

    #[test]
    fn release_gives_it_back_once() {
        let n = neutron();
        rt().block_on(async {
            assert_eq!(release(&n, "visio").await.unwrap(), None);
            let a = ensure(&n, "visio", "ext-floating1").await.unwrap();
            assert_eq!(release(&n, "visio").await.unwrap(), Some(a.address));
            assert!(n.fips().is_empty());
            assert_eq!(release(&n, "visio").await.unwrap(), None);
        });
    }
}
