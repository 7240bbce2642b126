//! A deployment's servers as the cloud describes them. Nothing is kept on
//! disk: every server carries its deployment, release and role in Nova's
//! metadata and tags, and every command reads them back from there.

use crate::cloud::compute::{ComputeService, ServerDetail, ServerStatus};
use crate::cloud::CloudError;
use serde::Serialize;
use std::collections::BTreeMap;

/// Server metadata: the deployment it belongs to.
pub const M_DEPLOYMENT: &str = "ingot_deployment";
/// The Glance id of the release it was booted from.
pub const M_RELEASE: &str = "ingot_release";
pub const M_VERSION: &str = "ingot_version";
pub const M_DIGEST: &str = "ingot_digest";
/// What the server is for, as the last command left it ([`Role`]).
pub const M_ROLE: &str = "ingot_role";
/// Unix time of the last role change: which standby served last.
pub const M_SINCE: &str = "ingot_since";
/// The run that created it (a journal names it).
pub const M_RUN: &str = "ingot_deploy";
/// While a candidate: the Unix time by which its run must have ended; `gc`
/// leaves a leased candidate alone.
pub const M_LEASE: &str = "ingot_deploy_lease";
/// While a candidate: the process of its run ([`super::owner`]), so that a
/// deploy on the same machine sees at once that the run was killed.
pub const M_OWNER: &str = "ingot_deploy_owner";
/// Nova tag of every deployed server, beside `ingot`.
pub fn tag(deployment: &str) -> String {
    format!("ingot-deployment:{deployment}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Booting, not yet gated: never given the address.
    Candidate,
    /// Given the address (or, on a direct network, the DNS record).
    Serving,
    /// Stopped and kept for a fast rollback.
    Standby,
    /// Failed its gate and kept on request (`--keep-failed`).
    Failed,
    /// An ad-hoc server of `ingot launch` that passed its gate: part of no
    /// deployment, kept until `ingot launch --delete`.
    Launched,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Candidate => "candidate",
            Role::Serving => "serving",
            Role::Standby => "standby",
            Role::Failed => "failed",
            Role::Launched => "launched",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "candidate" => Role::Candidate,
            "serving" => Role::Serving,
            "standby" => Role::Standby,
            "failed" => Role::Failed,
            "launched" => Role::Launched,
            _ => return None,
        })
    }
}

/// One server of a deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub status: ServerStatus,
    /// What Nova is doing to it (`powering-on`, `deleting`, …).
    pub task_state: Option<String>,
    /// `None` when the metadata says something ingot did not write.
    pub role: Option<Role>,
    pub release_id: String,
    pub version: String,
    pub digest: String,
    pub created: String,
    /// Unix time of its last role change.
    pub since: i64,
    pub run: String,
    pub lease: Option<i64>,
    /// The process of the run that holds the lease, if it said.
    pub owner: Option<String>,
    /// Fixed and floating addresses Nova lists for it.
    pub addresses: Vec<String>,
    /// Nova's fault message, if it is in ERROR.
    pub fault: Option<String>,
}

impl Member {
    pub fn from_detail(s: ServerDetail) -> Member {
        let get = |k: &str| s.metadata.get(k).cloned().unwrap_or_default();
        let mut addresses: Vec<String> = s
            .addresses
            .values()
            .flatten()
            .map(|a| a.addr.clone())
            .collect();
        addresses.sort();
        addresses.dedup();
        Member {
            role: s.metadata.get(M_ROLE).and_then(|r| Role::parse(r)),
            release_id: get(M_RELEASE),
            version: get(M_VERSION),
            digest: get(M_DIGEST),
            since: get(M_SINCE).parse().unwrap_or(0),
            run: get(M_RUN),
            lease: s.metadata.get(M_LEASE).and_then(|l| l.parse().ok()),
            owner: s.metadata.get(M_OWNER).cloned(),
            fault: s
                .fault
                .as_ref()
                .map(|f| f.message.clone())
                .filter(|m| !m.is_empty()),
            created: s.created,
            addresses,
            id: s.id,
            name: s.name,
            status: s.status,
            task_state: s.task_state,
        }
    }

    /// `web-2-ab12cd34 (version 2, ACTIVE)`
    pub fn label(&self) -> String {
        format!("{} ({}, {})", self.name, self.version, self.status)
    }
}

/// The deployment's servers, newest role change first (ties: newest
/// created, then id), read from Nova by tag and checked by metadata.
pub async fn members<C: ComputeService>(
    nova: &C,
    deployment: &str,
) -> Result<Vec<Member>, CloudError> {
    let tag = tag(deployment);
    let mut out: Vec<Member> = nova
        .servers_detail(&[("tags", tag.as_str())])
        .await?
        .into_iter()
        .filter(|s| s.metadata.get(M_DEPLOYMENT).map(String::as_str) == Some(deployment))
        .map(Member::from_detail)
        .collect();
    out.sort_by(|a, b| {
        b.since
            .cmp(&a.since)
            .then_with(|| b.created.cmp(&a.created))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(out)
}

/// A stopped standby server of the release with this digest: starting it
/// is the fast way back to that release. Stopped and at rest: one whose
/// start is under way (a killed run asked for it) is no such server yet.
pub fn stopped_of<'m>(members: &'m [Member], digest: &str) -> Option<&'m Member> {
    members.iter().find(|m| {
        m.digest == digest
            && m.role == Some(Role::Standby)
            && m.status == ServerStatus::Shutoff
            && m.task_state.is_none()
    })
}

/// Metadata of a new server of this deployment.
pub fn metadata(
    deployment: &str,
    release: &crate::release::catalog::Release,
    run: &str,
    lease: i64,
) -> BTreeMap<String, String> {
    [
        (M_DEPLOYMENT, deployment.to_string()),
        (M_RELEASE, release.id.clone()),
        (M_VERSION, release.version.clone()),
        (M_DIGEST, release.digest.clone()),
        (M_ROLE, Role::Candidate.name().to_string()),
        (M_SINCE, crate::cloud::time::now().to_string()),
        (M_RUN, run.to_string()),
        (M_LEASE, lease.to_string()),
    ]
    .into_iter()
    .chain(super::owner::this_process().map(|o| (M_OWNER, o)))
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Records a role change on the server (and ends a candidate's lease and
/// its owner).
pub async fn set_role<C: ComputeService>(
    nova: &C,
    server: &str,
    role: Role,
) -> Result<(), CloudError> {
    let items: BTreeMap<String, String> = [
        (M_ROLE.to_string(), role.name().to_string()),
        (M_SINCE.to_string(), crate::cloud::time::now().to_string()),
    ]
    .into_iter()
    .collect();
    nova.update_server_metadata(server, &items).await?;
    if role != Role::Candidate {
        nova.delete_server_metadata_item(server, M_LEASE).await?;
        nova.delete_server_metadata_item(server, M_OWNER).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_fit_novas_limit_for_every_valid_name() {
        let longest = "a".repeat(40);
        assert!(tag(&longest).len() <= 60);
        assert_eq!(tag("visio"), "ingot-deployment:visio");
    }

    #[test]
    fn roles_round_trip() {
        for r in [
            Role::Candidate,
            Role::Serving,
            Role::Standby,
            Role::Failed,
            Role::Launched,
        ] {
            assert_eq!(Role::parse(r.name()), Some(r));
        }
        assert_eq!(Role::parse("boss"), None);
    }
}
