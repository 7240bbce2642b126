//! `ingot launch`: one ad-hoc server from a release, to try the release
//! out. The same steps as a deploy's new server — preflight, the boot
//! rendered for this instance, the gate on its console — without a
//! deployment: no address moves, no security group is synced, nothing
//! else is touched. The server carries the marks of a deploy's server
//! (release, version, digest, role, run and a lease while it boots) with
//! `ingot_launch` instead of `ingot_deployment`, so that `ingot gc` finds
//! what a killed launch left and `ingot launch --delete` finds it by name.

use super::error::DeployError;
use super::fleet::{self, Role};
use super::flow::{Deployer, Target};
use crate::build::openstack::console::ConsoleTail;
use crate::cloud::compute::{ComputeService, Networks, NewServer};
use crate::cloud::network::NetworkService;
use crate::cloud::CloudError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Server metadata: the name it was launched as.
pub const M_LAUNCH: &str = "ingot_launch";
/// Nova tag of every launched server, beside `ingot`.
pub const LAUNCH_TAG: &str = "ingot-launch";
/// What a candidate's lease gives beyond its boot timeout: the create
/// before the wait and the role written after it.
pub const LEASE_MARGIN: u64 = 600;

#[derive(Debug, Error)]
pub enum LaunchError {
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("--name {name:?}: {message}")]
    BadName { name: String, message: String },
    #[error("launch {name}: preflight found {} problem(s), nothing was created:\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Preflight { name: String, problems: Vec<String> },
    #[error("launch {name}: {} would change what is baked into the image, not only its first boot: set {} in the image file and build a release", sets(params), if params.len() == 1 { "it" } else { "them" })]
    ChangesBake { name: String, params: Vec<String> },
    #[error("launch {name}: the server of release {version} failed its first boot: {why}; it was {fate}{}", console_excerpt(console))]
    GateFailed {
        name: String,
        version: String,
        why: String,
        /// `deleted`, or `kept (--keep-failed)`.
        fate: String,
        console: Vec<String>,
    },
    #[error("no server was launched as {name}{}", if known.is_empty() { String::new() } else { format!(" (launched: {})", known.join(", ")) })]
    NotLaunched { name: String, known: Vec<String> },
    #[error("cancelled (Ctrl-C): {cleanup}")]
    Cancelled { cleanup: String },
}

fn sets(params: &[String]) -> String {
    params
        .iter()
        .map(|p| format!("--set {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn console_excerpt(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\nthe console's last lines:\n{}",
        lines
            .iter()
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

impl LaunchError {
    /// A deploy's words for what a launch shares with it, said of the
    /// launch: `--set` values, not a deployment's `params`.
    pub fn from_deploy(name: &str, e: DeployError) -> LaunchError {
        match e {
            DeployError::Preflight { problems, .. } => LaunchError::Preflight {
                name: name.to_string(),
                problems,
            },
            DeployError::ChangesBake { params, .. } => LaunchError::ChangesBake {
                name: name.to_string(),
                params,
            },
            other => LaunchError::Deploy(other),
        }
    }

    pub fn code(&self) -> i32 {
        use crate::error::{EXIT_CANCELLED, EXIT_FAILURE, EXIT_INVALID_INPUT};
        match self {
            LaunchError::Deploy(e) => e.code(),
            LaunchError::BadName { .. }
            | LaunchError::Preflight { .. }
            | LaunchError::ChangesBake { .. }
            | LaunchError::NotLaunched { .. } => EXIT_INVALID_INPUT,
            LaunchError::Cancelled { .. } => EXIT_CANCELLED,
            LaunchError::Cloud(_) | LaunchError::GateFailed { .. } => EXIT_FAILURE,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            LaunchError::Deploy(e) => e.kind(),
            LaunchError::Cloud(_) => "cloud",
            LaunchError::BadName { .. } => "usage",
            LaunchError::Preflight { .. } => "preflight",
            LaunchError::ChangesBake { .. } => "changes_bake",
            LaunchError::GateFailed { .. } => "boot_failed",
            LaunchError::NotLaunched { .. } => "not_launched",
            LaunchError::Cancelled { .. } => "cancelled",
        }
    }
}

/// What the command line adds to a deploy's server.
pub struct Request<'a> {
    /// The server's name (checked: [`crate::model::names::ServerName`]).
    pub name: &'a str,
    /// The image's name, for the report.
    pub image: &'a str,
    /// Existing security groups, by name or id; none: Nova's `default`.
    pub security_groups: &'a [String],
}

/// A launched server that passed its gate.
#[derive(Debug, Clone, Serialize)]
pub struct Launched {
    pub name: String,
    pub server: String,
    pub image: String,
    pub release: String,
    pub version: String,
    pub digest: String,
    pub flavor: String,
    pub network: String,
    /// Its fixed addresses, as Nova lists them.
    pub addresses: Vec<String>,
    pub security_groups: Vec<String>,
    pub run: String,
    /// Control-plane seconds, and the part spent waiting for the guest.
    pub seconds: f64,
    pub boot_seconds: f64,
    /// How to delete it.
    pub delete: String,
}

/// What `ingot launch --delete` removed.
#[derive(Debug, Clone, Serialize)]
pub struct Deleted {
    pub name: String,
    pub servers: Vec<String>,
}

/// The server's metadata: a deploy's, naming the launch instead of a
/// deployment.
pub fn metadata(
    name: &str,
    release: &crate::release::catalog::Release,
    run: &str,
    lease: i64,
) -> BTreeMap<String, String> {
    let mut m = fleet::metadata(name, release, run, lease);
    m.remove(fleet::M_DEPLOYMENT);
    m.insert(M_LAUNCH.to_string(), name.to_string());
    m
}

/// Nova's name filter is a regular expression: anchored, for one name (a
/// checked server name has nothing to escape).
fn exact(name: &str) -> String {
    format!("^{name}$")
}

/// Preflight (a deploy's, plus the name and the groups), the server, its
/// gate. A failed gate deletes the server (or keeps it, `failed`, with
/// `keep_failed`); so does Ctrl-C or an error while it boots.
pub async fn launch<C: ComputeService, N: NetworkService>(
    d: &Deployer<'_, C, N>,
    req: &Request<'_>,
    target: &Target,
) -> Result<Launched, LaunchError> {
    let started = Instant::now();
    let mut problems = Vec::new();
    let ids = match d.preflight(target).await {
        Ok(ids) => Some(ids),
        Err(DeployError::Preflight { problems: p, .. }) => {
            problems = p;
            None
        }
        Err(e) => return Err(e.into()),
    };
    let taken = d.nova.servers_detail(&[("name", &exact(req.name))]).await?;
    for s in taken.iter().filter(|s| s.name == req.name) {
        problems.push(format!(
            "a server named {} exists already ({}, {}): choose another --name{}",
            s.name,
            s.id,
            s.status,
            if s.metadata.contains_key(M_LAUNCH) {
                format!(", or delete it: ingot launch --delete {}", s.name)
            } else {
                String::new()
            }
        ));
    }
    let mut groups = Vec::new();
    for g in req.security_groups {
        let mut found = d.neutron.security_groups(&[("name", g)]).await?;
        if found.is_empty() {
            found = d.neutron.security_groups(&[("id", g)]).await?;
        }
        match found.as_slice() {
            [one] => groups.push(one.id.clone()),
            [] => problems.push(format!("--security-group {g:?}: no such security group")),
            many => problems.push(format!(
                "--security-group {g:?}: {} groups have this name; give its id",
                many.len()
            )),
        }
    }
    let (flavor_id, network_id) = match ids {
        Some(ids) if problems.is_empty() => ids,
        _ => {
            return Err(LaunchError::Preflight {
                name: req.name.to_string(),
                problems,
            })
        }
    };
    d.progress.say(&format!(
        "preflight passed: {} on {}, release {}",
        d.spec.server.flavor,
        d.spec.server.network,
        target.release.label()
    ));
    if d.cancel.fired() {
        return Err(LaunchError::Cancelled {
            cleanup: "nothing was created".into(),
        });
    }

    let run = crate::build::openstack::build_id();
    let lease = crate::cloud::time::now() + (d.spec.server.boot_timeout + LEASE_MARGIN) as i64;
    let new = NewServer {
        name: req.name.to_string(),
        image_id: target.release.id.clone(),
        flavor_id,
        networks: Networks::Ids(vec![network_id]),
        user_data: Some(target.boot.clone()),
        metadata: metadata(req.name, &target.release, &run, lease),
        tags: vec![crate::release::TAG.to_string(), LAUNCH_TAG.to_string()],
        security_groups: groups,
        key_name: d.spec.server.key_name.clone(),
    };
    d.progress.say(&format!(
        "creating server {} from image {} ({})",
        req.name,
        target.release.id,
        target.release.label()
    ));
    let id = d.nova.create_server(&new).await?;
    d.progress
        .say(&format!("server {id} created; watching its first boot"));

    let boot_started = Instant::now();
    let verdict = match d
        .cancel
        .race(d.gate(&id, ConsoleTail::default()))
        .await
        .transpose()
    {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Err(LaunchError::Cancelled {
                cleanup: abandon(d.nova, &id, req.name).await,
            })
        }
        Err(e) => {
            d.progress.say(&abandon(d.nova, &id, req.name).await);
            return Err(e.into());
        }
    };
    let boot_seconds = boot_started.elapsed().as_secs_f64();
    if let Err((why, console)) = verdict {
        let fate = if d.opts.keep_failed {
            match fleet::set_role(d.nova, &id, Role::Failed).await {
                Ok(()) => format!("kept (--keep-failed): ingot launch --delete {}", req.name),
                Err(e) => format!("meant to be kept, but marking it failed failed: {e}"),
            }
        } else {
            match d.nova.delete_server(&id).await {
                Ok(_) => "deleted".to_string(),
                Err(e) => format!("NOT deleted ({e}); `ingot gc` deletes it once its lease ends"),
            }
        };
        return Err(LaunchError::GateFailed {
            name: req.name.to_string(),
            version: target.release.version.clone(),
            why,
            fate,
            console,
        });
    }
    d.progress.say(&format!(
        "{} passed its boot checks in {boot_seconds:.0} s",
        req.name
    ));
    fleet::set_role(d.nova, &id, Role::Launched).await?;
    let detail = d.nova.server(&id).await?;
    let mut addresses: Vec<String> = detail
        .iter()
        .flat_map(|s| s.addresses.values().flatten().map(|a| a.addr.clone()))
        .collect();
    addresses.sort();
    addresses.dedup();
    Ok(Launched {
        name: req.name.to_string(),
        server: id,
        image: req.image.to_string(),
        release: target.release.id.clone(),
        version: target.release.version.clone(),
        digest: target.release.digest.clone(),
        flavor: d.spec.server.flavor.clone(),
        network: d.spec.server.network.clone(),
        addresses,
        security_groups: if req.security_groups.is_empty() {
            vec!["default".into()]
        } else {
            req.security_groups.to_vec()
        },
        run,
        seconds: round(started.elapsed().as_secs_f64() - boot_seconds),
        boot_seconds: round(boot_seconds),
        delete: format!("ingot launch --delete {}", req.name),
    })
}

/// After Ctrl-C or an error while the server boots: delete it.
async fn abandon<C: ComputeService>(nova: &C, id: &str, name: &str) -> String {
    match nova.delete_server(id).await {
        Ok(_) => format!("the server {name} was deleted"),
        Err(e) => format!(
            "the server {name} ({id}) could not be deleted ({e}): `ingot gc` deletes it once its lease ends, or `ingot launch --delete {name}`"
        ),
    }
}

/// `ingot launch --delete NAME`: the servers launched as NAME (tag and
/// metadata both say so; a server ingot did not launch is never touched),
/// deleted and waited for.
pub async fn delete<C: ComputeService>(
    nova: &C,
    name: &str,
    progress: &crate::progress::Progress,
) -> Result<Deleted, LaunchError> {
    let all = nova.servers_detail(&[("tags", LAUNCH_TAG)]).await?;
    let mine: Vec<_> = all
        .iter()
        .filter(|s| s.metadata.get(M_LAUNCH).map(String::as_str) == Some(name))
        .collect();
    if mine.is_empty() {
        let mut known: Vec<String> = all
            .iter()
            .filter_map(|s| s.metadata.get(M_LAUNCH).cloned())
            .collect();
        known.sort();
        known.dedup();
        return Err(LaunchError::NotLaunched {
            name: name.to_string(),
            known,
        });
    }
    for s in &mine {
        nova.delete_server(&s.id).await?;
        progress.say(&format!("deleting server {} ({})", s.name, s.id));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for s in &mine {
        while nova.server(&s.id).await?.is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(Deleted {
        name: name.to_string(),
        servers: mine.iter().map(|s| s.id.clone()).collect(),
    })
}

fn round(s: f64) -> f64 {
    (s.max(0.0) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_codes() {
        let e = LaunchError::ChangesBake {
            name: "try1".into(),
            params: vec!["fqdn".into()],
        };
        assert_eq!(
            e.to_string(),
            "launch try1: --set fqdn would change what is baked into the image, not only its first boot: set it in the image file and build a release"
        );
        assert_eq!(e.code(), 2);
        let e = LaunchError::GateFailed {
            name: "try1".into(),
            version: "1.2.0".into(),
            why: "INGOT-BOOT-FAILED checks; check web/http failed: HTTP 500".into(),
            fate: "deleted".into(),
            console: vec!["INGOT-CHECK-FAILED web/http: HTTP 500".into()],
        };
        assert_eq!(
            e.to_string(),
            "launch try1: the server of release 1.2.0 failed its first boot: INGOT-BOOT-FAILED checks; check web/http failed: HTTP 500; it was deleted\nthe console's last lines:\n  | INGOT-CHECK-FAILED web/http: HTTP 500"
        );
        assert_eq!(e.code(), 1);
        let e = LaunchError::NotLaunched {
            name: "try2".into(),
            known: vec!["try1".into()],
        };
        assert_eq!(
            e.to_string(),
            "no server was launched as try2 (launched: try1)"
        );
        assert_eq!(e.code(), 2);
        let e = LaunchError::from_deploy(
            "try1",
            DeployError::Preflight {
                deployment: "try1".into(),
                problems: vec!["flavor `x` does not exist".into()],
            },
        );
        assert_eq!(
            e.to_string(),
            "launch try1: preflight found 1 problem(s), nothing was created:\n  - flavor `x` does not exist"
        );
        assert_eq!(e.code(), 2);
        assert_eq!(
            LaunchError::Cancelled {
                cleanup: "the server try1 was deleted".into()
            }
            .code(),
            130
        );
    }

    #[test]
    fn metadata_names_the_launch_not_a_deployment() {
        let release = crate::release::catalog::Release {
            id: "img-1".into(),
            name: "web-1.0.0".into(),
            version: "1.0.0".into(),
            digest: "sha256:ab".into(),
            created_at: String::new(),
            updated_at: String::new(),
            size: None,
            status: crate::cloud::image::ImageStatus::Active,
            channels: vec![],
            servers: None,
            protected: false,
        };
        let m = metadata("try1", &release, "run1", 42);
        assert_eq!(m.get(M_LAUNCH).map(String::as_str), Some("try1"));
        assert!(!m.contains_key(fleet::M_DEPLOYMENT));
        assert_eq!(m.get(fleet::M_ROLE).map(String::as_str), Some("candidate"));
        assert_eq!(m.get(fleet::M_LEASE).map(String::as_str), Some("42"));
        assert_eq!(m.get(fleet::M_RELEASE).map(String::as_str), Some("img-1"));
    }
}
