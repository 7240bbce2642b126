//! What killed deploys and launches leave, for `ingot gc`: a server that
//! was booting when its run died stays a `candidate` (or, killed between
//! two metadata writes, `failed`) with the lease its run gave it. Such a
//! server is a leftover once the lease has ended; it is deleted with the
//! same `--older-than` and `--ignore-leases` rules as a build's leftovers.
//!
//! Never deleted, whatever its metadata says: a server a floating IP
//! points at (a run killed after moving the address but before writing
//! the role leaves exactly that: the next `deploy` marks it serving), a
//! serving or standby server, a server without a lease (a `--keep-failed`
//! one was kept on request), a build's server (the build gc's), anything
//! without ingot's tag. Security groups and addresses are `destroy`'s.

use super::fleet::{self, Role};
use super::launch::M_LAUNCH;
use crate::build::openstack::gc::Action;
use crate::cloud::compute::{ComputeService, ServerDetail};
use crate::cloud::network::NetworkService;
use crate::cloud::CloudError;
use crate::progress::Progress;
use serde::Serialize;
use std::collections::BTreeMap;

pub struct GcOptions {
    pub dry_run: bool,
    /// Only servers created at least this long ago (seconds).
    pub older_than: i64,
    /// Delete leased servers too: the user knows no run is going.
    pub ignore_leases: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: String,
    pub name: String,
    /// `deploy` or `launch`.
    pub made_by: &'static str,
    /// The deployment's name, or the launch's.
    pub owner: String,
    /// The run that created it.
    pub run: String,
    pub role: String,
    /// Seconds since it was created, when Nova says.
    pub age: Option<i64>,
    /// Unix time its lease ended (or ends).
    pub lease: i64,
    pub action: Action,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub items: Vec<Item>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i.action, Action::Failed(_)))
            .count()
    }
}

/// A server of a deploy or a launch that booted under a lease and never
/// got further: its owner, run, role and lease.
fn leftover(s: &ServerDetail) -> Option<(&'static str, String, String, Role, i64)> {
    let m = &s.metadata;
    if m.contains_key(crate::build::openstack::M_BUILD) {
        return None;
    }
    let (made_by, owner) = match (m.get(fleet::M_DEPLOYMENT), m.get(M_LAUNCH)) {
        (Some(d), _) => ("deploy", d.clone()),
        (None, Some(l)) => ("launch", l.clone()),
        (None, None) => return None,
    };
    let run = m.get(fleet::M_RUN)?.clone();
    // A lease that cannot be read protects nothing, but it marks nothing
    // either: without a readable one the server is not a leftover.
    let lease: i64 = m.get(fleet::M_LEASE)?.trim().parse().ok()?;
    let role = Role::parse(m.get(fleet::M_ROLE)?)?;
    matches!(role, Role::Candidate | Role::Failed).then_some((made_by, owner, run, role, lease))
}

pub async fn gc<C: ComputeService, N: NetworkService>(
    nova: &C,
    neutron: impl std::future::Future<Output = Result<N, CloudError>>,
    opts: &GcOptions,
    progress: &Progress,
) -> Result<Report, CloudError> {
    let now = crate::cloud::time::now();
    let mut report = Report {
        dry_run: opts.dry_run,
        ..Report::default()
    };
    let servers = nova
        .servers_detail(&[("tags", crate::release::TAG)])
        .await?;
    // Neutron only when a server may go: which floating IPs point where.
    let mut neutron = Some(neutron);
    let mut pointed: Option<(N, BTreeMap<String, String>)> = None;
    for s in &servers {
        let Some((made_by, owner, run, role, lease)) = leftover(s) else {
            continue;
        };
        let age = crate::cloud::time::parse_utc(&s.created).map(|t| now - t);
        let action = if lease > now && !opts.ignore_leases {
            Action::Kept(format!(
                "its run {run} may still be going (lease until {} UTC); --ignore-leases deletes it anyway",
                crate::cloud::time::format_utc(lease)
            ))
        } else if age.is_some_and(|a| a < opts.older_than) {
            Action::Kept(format!("younger than {} s (--older-than)", opts.older_than))
        } else {
            if pointed.is_none() {
                let n = neutron.take().expect("taken once").await?;
                let by_port = n
                    .floating_ips(&[])
                    .await?
                    .into_iter()
                    .filter_map(|f| f.port_id.map(|p| (p, f.floating_ip_address)))
                    .collect();
                pointed = Some((n, by_port));
            }
            let (n, by_port) = pointed.as_ref().expect("set above");
            let ports = n.ports(&[("device_id", s.id.as_str())]).await?;
            match ports.iter().find_map(|p| by_port.get(&p.id)) {
                Some(address) => Action::Kept(format!(
                    "the floating IP {address} points at it: the next `ingot deploy {owner}` decides"
                )),
                None if opts.dry_run => Action::WouldDelete,
                None => match nova.delete_server(&s.id).await {
                    Ok(_) => Action::Deleted,
                    Err(e) => Action::Failed(e.to_string()),
                },
            }
        };
        progress.say(&format!(
            "{} server {} ({}, {made_by} {owner}, run {run}, {}): {}",
            match action {
                Action::Deleted => "deleted",
                Action::WouldDelete => "would delete",
                Action::Kept(_) => "kept",
                Action::Failed(_) => "FAILED to delete",
            },
            s.id,
            s.name,
            role.name(),
            match &action {
                Action::Kept(why) | Action::Failed(why) => why.as_str(),
                _ => "its run is over",
            }
        ));
        report.items.push(Item {
            id: s.id.clone(),
            name: s.name.clone(),
            made_by,
            owner,
            run,
            role: role.name().to_string(),
            age,
            lease,
            action,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(meta: &[(&str, &str)]) -> ServerDetail {
        ServerDetail {
            id: "s1".into(),
            name: "web-1".into(),
            status: crate::cloud::compute::ServerStatus::Active,
            task_state: None,
            power_state: None,
            fault: None,
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags: vec![crate::release::TAG.into()],
            image_id: None,
            flavor: String::new(),
            addresses: BTreeMap::new(),
            created: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn only_leased_candidates_and_failed_servers_are_leftovers() {
        let base = [
            (fleet::M_DEPLOYMENT, "visio"),
            (fleet::M_RUN, "r1"),
            (fleet::M_LEASE, "100"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut m: Vec<(&str, &str)> = base.to_vec();
            m.extend_from_slice(extra);
            server(&m)
        };
        let l = leftover(&with(&[(fleet::M_ROLE, "candidate")])).unwrap();
        assert_eq!(
            (l.0, l.1.as_str(), l.3, l.4),
            ("deploy", "visio", Role::Candidate, 100)
        );
        assert!(leftover(&with(&[(fleet::M_ROLE, "failed")])).is_some());
        for role in ["serving", "standby", "launched", "boss"] {
            assert!(
                leftover(&with(&[(fleet::M_ROLE, role)])).is_none(),
                "{role}"
            );
        }
        // No lease: kept on purpose (--keep-failed), not a leftover.
        assert!(leftover(&server(&[
            (fleet::M_DEPLOYMENT, "visio"),
            (fleet::M_RUN, "r1"),
            (fleet::M_ROLE, "failed"),
        ]))
        .is_none());
        // A build's server is the build gc's.
        assert!(leftover(&with(&[
            (fleet::M_ROLE, "candidate"),
            (crate::build::openstack::M_BUILD, "b1")
        ]))
        .is_none());
        // A launch's.
        let l = leftover(&server(&[
            (M_LAUNCH, "try1"),
            (fleet::M_RUN, "r2"),
            (fleet::M_LEASE, "5"),
            (fleet::M_ROLE, "candidate"),
        ]))
        .unwrap();
        assert_eq!((l.0, l.1.as_str()), ("launch", "try1"));
        // Neither a deployment's nor a launch's.
        assert!(leftover(&server(&[
            (fleet::M_RUN, "r2"),
            (fleet::M_LEASE, "5"),
            (fleet::M_ROLE, "candidate"),
        ]))
        .is_none());
    }
}
