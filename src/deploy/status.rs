//! `ingot status` and `ingot destroy`: what the cloud says of a deployment,
//! and taking it down.

use super::address;
use super::error::DeployError;
use super::fleet::{self, Member, Role};
use super::secgroup;
use crate::cloud::compute::ComputeService;
use crate::cloud::network::NetworkService;
use crate::model::deployment::{AddressSpec, LoadedDeployment};
use crate::progress::Progress;
use crate::release::catalog::Release;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub deployment: String,
    pub image: String,
    /// The kept floating IP and the server it points at.
    pub address: Option<String>,
    /// The server that serves now (where the address points).
    pub serving: Option<String>,
    pub servers: Vec<Row>,
    pub security_group: Option<String>,
    /// The DNS record and what the resolver says, when the deployment
    /// names a zone (the command layer reads it: see deploy/dns.rs).
    pub dns: Option<super::dns::DnsView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub id: String,
    pub version: String,
    pub digest: String,
    pub state: String,
    pub role: String,
    pub serving: bool,
    pub addresses: Vec<String>,
    /// The channels of its release, now.
    pub channels: Vec<String>,
    /// `passed` for a server that passed its gate (serving or standby),
    /// `failed`, `booting`, or Nova's fault.
    pub health: String,
}

pub async fn read<C: ComputeService, N: NetworkService>(
    nova: &C,
    neutron: &N,
    dep: &LoadedDeployment,
    image: &str,
    releases: &[Release],
) -> Result<Status, DeployError> {
    let members = fleet::members(nova, &dep.name).await?;
    let kept = match dep.deployment.address {
        AddressSpec::FloatingIp { .. } => address::find(neutron, &dep.name).await?,
        AddressSpec::Direct => None,
    };
    let serving_id: Option<String> = match (&dep.deployment.address, &kept) {
        (AddressSpec::FloatingIp { .. }, Some(k)) => match &k.port_id {
            Some(port) => neutron
                .ports(&[("id", port.as_str())])
                .await?
                .first()
                .map(|p| p.device_id.clone()),
            None => None,
        },
        (AddressSpec::FloatingIp { .. }, None) => None,
        (AddressSpec::Direct, _) => members
            .iter()
            .find(|m| m.role == Some(Role::Serving))
            .map(|m| m.id.clone()),
    };
    let groups = neutron
        .security_groups(&[("name", secgroup::group_name(&dep.name).as_str())])
        .await?;
    let rows = members
        .iter()
        .map(|m| row(m, serving_id.as_deref() == Some(m.id.as_str()), releases))
        .collect();
    Ok(Status {
        deployment: dep.name.clone(),
        image: image.to_string(),
        address: kept.map(|k| k.address),
        serving: members
            .iter()
            .find(|m| serving_id.as_deref() == Some(m.id.as_str()))
            .map(|m| m.name.clone()),
        servers: rows,
        security_group: groups.first().map(|g| g.id.clone()),
        dns: None,
    })
}

fn row(m: &Member, serving: bool, releases: &[Release]) -> Row {
    let health = if let Some(f) = &m.fault {
        format!("error: {f}")
    } else {
        match m.role {
            Some(Role::Serving) | Some(Role::Standby) | Some(Role::Launched) => "passed".into(),
            Some(Role::Failed) => "failed".into(),
            Some(Role::Candidate) => "booting".into(),
            None => "unknown".into(),
        }
    };
    Row {
        name: m.name.clone(),
        id: m.id.clone(),
        version: m.version.clone(),
        digest: m.digest.clone(),
        state: m.status.to_string(),
        role: m.role.map(|r| r.name().to_string()).unwrap_or_default(),
        serving,
        addresses: m.addresses.clone(),
        channels: releases
            .iter()
            .find(|r| r.id == m.release_id)
            .map(|r| r.channels.clone())
            .unwrap_or_default(),
        health,
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Destroyed {
    pub deployment: String,
    pub servers: Vec<String>,
    pub security_group: Option<String>,
    /// Released only with `--release-address`; otherwise kept, and named.
    pub address_released: Option<String>,
    pub address_kept: Option<String>,
    /// The DNS record: deleted only with `--delete-dns`.
    pub dns: Option<super::dns::DnsLeft>,
}

/// Servers first (a group in use cannot go), then the group; the address
/// only on request: it is what DNS points at.
pub async fn destroy<C: ComputeService, N: NetworkService>(
    nova: &C,
    neutron: &N,
    deployment: &str,
    release_address: bool,
    progress: &Progress,
) -> Result<Destroyed, DeployError> {
    let mut out = Destroyed {
        deployment: deployment.to_string(),
        ..Destroyed::default()
    };
    let members = fleet::members(nova, deployment).await?;
    for m in &members {
        nova.delete_server(&m.id).await?;
        progress.say(&format!("deleting server {} ({})", m.name, m.id));
        out.servers.push(m.name.clone());
    }
    // Nova deletes asynchronously; the group is in use until the ports go.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for m in &members {
        while nova.server(&m.id).await?.is_some() {
            if std::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    let mut tries = 0;
    out.security_group = loop {
        match secgroup::delete(neutron, deployment).await {
            Ok(g) => break g,
            Err(e) if tries < 20 => {
                tries += 1;
                tracing::info!("security group not deletable yet: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    if release_address {
        out.address_released = address::release(neutron, deployment).await?;
    } else {
        out.address_kept = address::find(neutron, deployment).await?.map(|k| k.address);
    }
    Ok(out)
}
