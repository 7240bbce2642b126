//! Blue/green, as one converging procedure: read what the cloud says of the
//! deployment, finish or clean up what an interrupted run left, boot the
//! new release beside the serving one, gate it on its console, and only
//! then move the address and stop the old server. A failed gate never
//! touches the address.
//!
//! Every step is safe to repeat: running `deploy` again after Ctrl-C or a
//! kill reads the servers' roles and the address back and goes on from
//! there; nothing needs a local file.

use super::address::{self, Kept};
use super::dns::{Keeper, Pointed};
use super::error::DeployError;
use super::fleet::{self, Member, Role};
use super::owner::{self, Liveness};
use super::probe::{self, Verdict};
use super::secgroup;
use crate::build::gate::{self, BootVerdict, Ending};
use crate::build::openstack::console::{ConsoleTail, ServerGuest};
use crate::build::openstack::preflight::{self, Demand};
use crate::build::openstack::Cancel;
use crate::cloud::compute::{ComputeService, Networks, NewServer, ServerStatus};
use crate::cloud::dns::Designate;
use crate::cloud::image::Image;
use crate::cloud::network::{NetworkQuotas, NetworkService};
use crate::manifest::PortRecord;
use crate::model::deployment::{AddressSpec, Deployment};
use crate::progress::Progress;
use crate::release::catalog::Release;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What to run: a release, and its boot rendered for this deployment.
pub struct Target {
    pub release: Release,
    pub image: Image,
    /// The boot user-data (gzip when it had to be), secrets included: it
    /// goes to Nova and nowhere else.
    pub boot: Vec<u8>,
    pub ports: Vec<PortRecord>,
}

pub struct Options {
    pub poll: Duration,
    /// A failed new server is kept (role `failed`) instead of deleted.
    pub keep_failed: bool,
    /// How long the address may take to show on the new port.
    pub move_wait: Duration,
}

pub struct Deployer<'a, C, N> {
    pub nova: &'a C,
    pub neutron: &'a N,
    pub name: &'a str,
    pub spec: &'a Deployment,
    pub opts: &'a Options,
    pub progress: &'a Progress,
    pub cancel: Cancel,
    /// The DNS record, when the deployment names a zone (its preflight
    /// passed): it follows the address in the take-over.
    pub dns: Option<&'a Keeper<Designate<'a>>>,
}

/// How a deploy or rollback ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub deployment: String,
    /// `deployed`, `unchanged`, `restarted` (a standby started again).
    pub action: &'static str,
    pub version: String,
    pub digest: String,
    pub server: String,
    pub server_name: String,
    /// The kept floating IP, or the server's own address.
    pub address: Option<String>,
    /// The server that served before, now stopped.
    pub previous: Option<String>,
    /// Standby servers deleted beyond `keep`.
    pub pruned: Vec<String>,
    /// Candidates and failed servers of earlier runs cleaned up.
    pub cleaned: Vec<String>,
    pub security_group: SecurityReport,
    /// Control-plane seconds, and the part spent waiting for the guest.
    pub seconds: f64,
    pub boot_seconds: f64,
    /// Seconds of the whole address step: its lookup, the server's ports,
    /// the `PUT` and the read-backs until Neutron reports the new port.
    /// Not a gap in service: Neutron moves the address in one transaction
    /// (docs/benchmarks.md measured no moment without a port).
    pub move_seconds: Option<f64>,
    /// Control-plane seconds from the start of the run until the address
    /// was read back on the new server, the guest's boot left out: how
    /// long the user waits for service to change hands. What follows it
    /// (DNS, stopping the old server, pruning) does not delay service.
    pub serving_after_seconds: Option<f64>,
    /// What probing the public TCP ports from the runner said.
    pub probed: Vec<String>,
    /// The DNS record, when the deployment names a zone.
    pub dns: Option<Pointed>,
}

/// The deployment as the cloud has it once what interrupted runs left is
/// settled ([`Deployer::converged`]).
pub struct Fleet {
    /// Its servers, read again after any change.
    pub members: Vec<Member>,
    pub kept: Option<Kept>,
    /// The server the address points at.
    pub serving: Option<Member>,
    /// Candidates of earlier runs deleted.
    pub cleaned: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SecurityReport {
    pub group_id: String,
    pub created: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// TCP ports the group opens to the world: what is probed.
    pub open_tcp: Vec<u16>,
}

impl<C: ComputeService, N: NetworkService> Deployer<'_, C, N> {
    /// Everything that can be said before anything is created: flavor,
    /// network, external network, quotas.
    pub async fn preflight(&self, target: &Target) -> Result<(String, String), DeployError> {
        let flavors = self.nova.flavors().await?;
        let networks = self.neutron.networks(&[]).await?;
        let limits = self.nova.limits().await?;
        let number = |k: &str| {
            target.image.properties.get(k).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let demand = Demand {
            image: target.release.name.clone(),
            min_ram_mb: number("min_ram").unwrap_or(0),
            base_min_disk_gb: number("min_disk").unwrap_or(0),
            base_virtual_size: target.image.virtual_size,
        };
        let mut problems: Vec<String> = Vec::new();
        let choice = preflight::check(
            Some(&self.spec.server.flavor),
            Some(&self.spec.server.network),
            1,
            std::slice::from_ref(&demand),
            &flavors,
            &networks,
            &limits,
        );
        if let AddressSpec::FloatingIp { network } = &self.spec.address {
            let external: Vec<String> = networks
                .iter()
                .filter(|n| n.external)
                .map(|n| n.name.clone())
                .collect();
            if !networks
                .iter()
                .any(|n| n.external && (&n.name == network || &n.id == network))
            {
                let hint = crate::suggest::did_you_mean(network, &external)
                    .map(|s| format!("; did you mean {s}?"))
                    .unwrap_or_default();
                problems.push(format!(
                    "address.floating_ip.network {network:?}: no such external network (external networks: {}){hint}",
                    if external.is_empty() { "none".to_string() } else { external.join(", ") }
                ));
            }
        }
        if let Some(state) = &self.spec.state {
            // Read and checked, not acted on yet: a deploy that took the
            // file's word and moved nothing would lose the state it names.
            problems.push(format!(
                "state: a {} GB data volume is declared, but this ingot does not create or move data volumes yet; remove `state:` to deploy without kept state",
                state.size_gb
            ));
        }
        problems.extend(self.network_quota(target).await?);
        match choice {
            Ok(c) if problems.is_empty() => Ok((c.flavor.id, c.network.id)),
            Ok(_) => Err(DeployError::Preflight {
                deployment: self.name.to_string(),
                problems,
            }),
            Err(more) => {
                problems.extend(more.iter().map(|p| p.to_string()));
                Err(DeployError::Preflight {
                    deployment: self.name.to_string(),
                    problems,
                })
            }
        }
    }

    /// Neutron's side of the quota: the floating IP this deploy would
    /// allocate, the group and the rules it would add (a dry run of the
    /// group's sync says which), against what the project has left.
    async fn network_quota(&self, target: &Target) -> Result<Vec<String>, DeployError> {
        let Some(quotas) = self.neutron.quotas().await? else {
            return Ok(vec![]);
        };
        let new_address = matches!(self.spec.address, AddressSpec::FloatingIp { .. })
            && self.kept().await?.is_none();
        let wanted = self.wanted_rules(target)?;
        let dry = secgroup::sync(self.neutron, self.name, &wanted, true).await?;
        Ok(quota_problems(
            &quotas,
            new_address,
            dry.created_group,
            dry.added.len() as u64,
        ))
    }

    /// The kept floating IP, without allocating one.
    async fn kept(&self) -> Result<Option<Kept>, DeployError> {
        match &self.spec.address {
            AddressSpec::FloatingIp { .. } => Ok(address::find(self.neutron, self.name).await?),
            AddressSpec::Direct => Ok(None),
        }
    }

    /// The server the address points at: for a floating IP, the owner of
    /// its port; on a direct network, the newest server marked serving.
    pub async fn serving<'m>(
        &self,
        members: &'m [Member],
        kept: Option<&Kept>,
    ) -> Result<Option<&'m Member>, DeployError> {
        match &self.spec.address {
            AddressSpec::FloatingIp { .. } => {
                let Some(port) = kept.and_then(|k| k.port_id.as_deref()) else {
                    return Ok(None);
                };
                let ports = self.neutron.ports(&[("id", port)]).await?;
                let device = ports.first().map(|p| p.device_id.clone());
                Ok(members.iter().find(|m| Some(&m.id) == device.as_ref()))
            }
            AddressSpec::Direct => Ok(members
                .iter()
                .find(|m| m.role == Some(Role::Serving) && m.status == ServerStatus::Active)),
        }
    }

    /// Deploys `target`: the launch when nothing serves, else blue/green.
    pub async fn deploy(&self, target: &Target) -> Result<Outcome, DeployError> {
        let started = Instant::now();
        let (flavor_id, network_id) = self.preflight(target).await?;
        self.progress.say(&format!(
            "preflight passed: {} on {} ({}), release {}",
            self.spec.server.flavor,
            self.spec.server.network,
            match &self.spec.address {
                AddressSpec::FloatingIp { network } => format!("floating IP from {network}"),
                AddressSpec::Direct => "direct address".into(),
            },
            target.release.label()
        ));
        let Fleet {
            members,
            kept,
            serving,
            cleaned,
        } = self.converged().await?;

        let group = self.sync_group(target).await?;
        if let Some(s) = &serving {
            if s.digest == target.release.digest && s.status == ServerStatus::Active {
                self.progress.say(&format!(
                    "{} already serves release {}: nothing to deploy",
                    s.name,
                    target.release.label()
                ));
                if s.role != Some(Role::Serving) {
                    fleet::set_role(self.nova, &s.id, Role::Serving).await?;
                }
                // A run killed after its switch, before its prune, left
                // one standby too many.
                let pruned = self.prune(&s.id).await?;
                let dns = self
                    .point_dns(kept.as_ref().map(|k| k.address.as_str()), &s.id)
                    .await?;
                return Ok(Outcome {
                    deployment: self.name.to_string(),
                    action: "unchanged",
                    version: s.version.clone(),
                    digest: s.digest.clone(),
                    server: s.id.clone(),
                    server_name: s.name.clone(),
                    address: kept
                        .map(|k| k.address)
                        .or_else(|| s.addresses.first().cloned()),
                    previous: None,
                    pruned,
                    cleaned,
                    security_group: group,
                    seconds: round(started.elapsed().as_secs_f64()),
                    boot_seconds: 0.0,
                    move_seconds: None,
                    serving_after_seconds: None,
                    probed: vec![],
                    dns,
                });
            }
        }
        // A stopped server of this very release: start it, don't boot anew.
        if let Some(standby) = fleet::stopped_of(&members, &target.release.digest) {
            self.progress.say(&format!(
                "{} is a stopped server of release {}: starting it again",
                standby.name,
                target.release.label()
            ));
            return self
                .restart(standby, serving.as_ref(), group, cleaned, started)
                .await;
        }

        if self.cancel.fired() {
            return Err(DeployError::Cancelled {
                cleanup: "no server was created; the address did not move".into(),
            });
        }
        let kept = match &self.spec.address {
            AddressSpec::FloatingIp { network } => {
                let k = address::ensure(self.neutron, self.name, network).await?;
                if k.created {
                    self.progress.say(&format!(
                        "allocated the deployment's address {} from {network}",
                        k.address
                    ));
                }
                Some(k)
            }
            AddressSpec::Direct => None,
        };

        // The new server, beside the serving one.
        let run = crate::build::openstack::build_id();
        let server_name = format!("{}-{}-{run}", self.name, sanitize(&target.release.version));
        let lease = crate::cloud::time::now() + (self.spec.server.boot_timeout + 1800) as i64;
        let new = NewServer {
            name: server_name.clone(),
            image_id: target.release.id.clone(),
            flavor_id,
            networks: Networks::Ids(vec![network_id.clone()]),
            user_data: Some(target.boot.clone()),
            metadata: fleet::metadata(self.name, &target.release, &run, lease),
            tags: vec![crate::release::TAG.to_string(), fleet::tag(self.name)],
            security_groups: vec![group.group_id.clone()],
            key_name: self.spec.server.key_name.clone(),
        };
        self.progress.say(&format!(
            "creating server {server_name} from image {} ({})",
            target.release.id,
            target.release.label()
        ));
        let id = self.nova.create_server(&new).await?;
        self.progress
            .say(&format!("server {id} created; watching its first boot"));

        let boot_started = Instant::now();
        let verdict = self
            .cancel
            .race(self.gate(&id, ConsoleTail::default()))
            .await
            .transpose();
        let verdict = match verdict {
            Ok(Some(v)) => v,
            Ok(None) => {
                let cleanup = self.abandon(&id, &server_name).await;
                return Err(DeployError::Cancelled { cleanup });
            }
            Err(e) => {
                let cleanup = self.abandon(&id, &server_name).await;
                self.progress.say(&cleanup);
                return Err(e);
            }
        };
        let boot_seconds = boot_started.elapsed().as_secs_f64();
        if let Err((why, console)) = verdict {
            return Err(self
                .failed(
                    &id,
                    &server_name,
                    &target.release.version,
                    why,
                    console,
                    serving.as_ref(),
                )
                .await);
        }
        self.progress.say(&format!(
            "{server_name} passed its boot checks in {boot_seconds:.0} s"
        ));
        // Ctrl-C during the gate's last poll: the address has not moved.
        if self.cancel.fired() {
            let cleanup = self.abandon(&id, &server_name).await;
            return Err(DeployError::Cancelled { cleanup });
        }

        let mut probed = match self.probe_server(&id, &group.open_tcp).await? {
            Ok(notes) => notes,
            Err(why) => {
                return Err(self
                    .failed(
                        &id,
                        &server_name,
                        &target.release.version,
                        why,
                        vec![],
                        serving.as_ref(),
                    )
                    .await)
            }
        };

        // The switch: the address moves only to a server that passed.
        let over = self
            .take_over(
                kept.as_ref(),
                &id,
                &server_name,
                &network_id,
                serving.as_ref(),
                &group.open_tcp,
            )
            .await?;
        let taken = match over {
            Ok(taken) => taken,
            Err((why, back)) => {
                let fate = self.dispose(&id).await;
                return Err(DeployError::Unreachable {
                    deployment: self.name.to_string(),
                    address: kept.map(|k| k.address).unwrap_or_default(),
                    server: server_name,
                    version: target.release.version.clone(),
                    why,
                    back,
                    fate,
                });
            }
        };
        let serving_after = taken.serving_after(started, boot_seconds);
        probed.extend(taken.probed);
        if self.cancel.fired() {
            return Err(switched_anyway(
                &server_name,
                &target.release.version,
                taken.previous.as_deref(),
            ));
        }
        Ok(Outcome {
            deployment: self.name.to_string(),
            action: "deployed",
            version: target.release.version.clone(),
            digest: target.release.digest.clone(),
            server: id,
            server_name,
            address: taken.address,
            previous: taken.previous,
            pruned: taken.pruned,
            cleaned,
            security_group: group,
            seconds: round(started.elapsed().as_secs_f64() - boot_seconds),
            boot_seconds: round(boot_seconds),
            move_seconds: taken.switch,
            serving_after_seconds: serving_after,
            probed,
            dns: taken.dns,
        })
    }

    /// The fast path of a rollback (and of a deploy of a release that has a
    /// stopped server): start it, gate its restart, give it the address.
    pub async fn restart(
        &self,
        standby: &Member,
        serving: Option<&Member>,
        group: SecurityReport,
        cleaned: Vec<String>,
        started: Instant,
    ) -> Result<Outcome, DeployError> {
        if self.cancel.fired() {
            return Err(DeployError::Cancelled {
                cleanup: format!("{} was not started; the address did not move", standby.name),
            });
        }
        // What the console holds already is the last boot's: only what
        // follows the start counts.
        let mut tail = ConsoleTail::default();
        if let Ok(text) = self.nova.console_output(&standby.id, None).await {
            tail.new_lines(&text);
        }
        // It stays `standby` while it boots: it passed its gate once, and a
        // run killed now leaves a running standby, which the next command's
        // converge stops (a `candidate` mark would have it deleted).
        self.nova.start_server(&standby.id).await?;
        self.progress
            .say(&format!("started {}; watching its boot", standby.name));
        let boot_started = Instant::now();
        // os-start answers before the server leaves SHUTOFF: the gate would
        // read that as a server that stopped.
        let gated = async {
            self.wait_active(&standby.id).await?;
            let verdict = self.gate(&standby.id, tail).await?;
            Ok::<_, DeployError>((verdict, boot_started.elapsed().as_secs_f64()))
        };
        // What the switch needs from Neutron is read while the guest boots:
        // these seconds are off the path that gives the address back.
        let lookups = async {
            let network_id = self
                .neutron
                .networks(&[("name", self.spec.server.network.as_str())])
                .await?
                .first()
                .map(|n| n.id.clone())
                .unwrap_or_default();
            let kept = match &self.spec.address {
                AddressSpec::FloatingIp { network } => {
                    Some(address::ensure(self.neutron, self.name, network).await?)
                }
                AddressSpec::Direct => None,
            };
            Ok::<_, DeployError>((network_id, kept))
        };
        let both = async { tokio::try_join!(gated, lookups) };
        let ((verdict, boot_seconds), (network_id, kept)) =
            match self.cancel.race(both).await.transpose() {
                Ok(Some(v)) => v,
                Ok(None) => {
                    self.back_to_standby(standby).await;
                    return Err(DeployError::Cancelled {
                        cleanup: format!(
                            "{} was stopped again and stays a standby; the address did not move",
                            standby.name
                        ),
                    });
                }
                Err(e) => return Err(e),
            };
        if let Err((why, console)) = verdict {
            return Err(self.standby_failed(standby, serving, why, console).await);
        }
        self.progress.say(&format!(
            "{} passed its boot checks again in {boot_seconds:.0} s",
            standby.name
        ));
        if self.cancel.fired() {
            let _ = self.stop_and_wait(&standby.id).await;
            return Err(DeployError::Cancelled {
                cleanup: format!(
                    "{} passed its checks, but was stopped again and stays a standby; the address did not move",
                    standby.name
                ),
            });
        }
        let mut probed = match self.probe_server(&standby.id, &group.open_tcp).await? {
            Ok(notes) => notes,
            Err(why) => return Err(self.standby_failed(standby, serving, why, vec![]).await),
        };
        let over = self
            .take_over(
                kept.as_ref(),
                &standby.id,
                &standby.name,
                &network_id,
                serving,
                &group.open_tcp,
            )
            .await?;
        let taken = match over {
            Ok(taken) => taken,
            Err((why, back)) => {
                self.back_to_standby(standby).await;
                return Err(DeployError::Unreachable {
                    deployment: self.name.to_string(),
                    address: kept.map(|k| k.address).unwrap_or_default(),
                    server: standby.name.clone(),
                    version: standby.version.clone(),
                    why,
                    back,
                    fate: "stopped again and kept".into(),
                });
            }
        };
        let serving_after = taken.serving_after(started, boot_seconds);
        probed.extend(taken.probed);
        if self.cancel.fired() {
            return Err(switched_anyway(
                &standby.name,
                &standby.version,
                taken.previous.as_deref(),
            ));
        }
        Ok(Outcome {
            deployment: self.name.to_string(),
            action: "restarted",
            version: standby.version.clone(),
            digest: standby.digest.clone(),
            server: standby.id.clone(),
            server_name: standby.name.clone(),
            address: taken.address,
            previous: taken.previous,
            pruned: taken.pruned,
            cleaned,
            security_group: group,
            seconds: round(started.elapsed().as_secs_f64() - boot_seconds),
            boot_seconds: round(boot_seconds),
            move_seconds: taken.switch,
            serving_after_seconds: serving_after,
            probed,
            dns: taken.dns,
        })
    }

    /// The group's rules for the target's ports under the file's policy:
    /// what the preflight counts and what the sync makes.
    fn wanted_rules(
        &self,
        target: &Target,
    ) -> Result<Vec<secgroup::Rule>, secgroup::SecgroupError> {
        let policy = secgroup::Policy {
            icmp: self.spec.security.icmp,
            ssh_from: self.spec.security.ssh_from.clone(),
        };
        secgroup::wanted(&target.ports, &policy)
    }

    /// Security group first: the new server is created in it.
    pub async fn sync_group(&self, target: &Target) -> Result<SecurityReport, DeployError> {
        let wanted = self.wanted_rules(target)?;
        let synced = secgroup::sync(self.neutron, self.name, &wanted, false).await?;
        if !synced.is_noop() {
            self.progress.say(&format!(
                "security group {}: {} rule(s) added, {} removed",
                secgroup::group_name(self.name),
                synced.added.len(),
                synced.removed.len()
            ));
        }
        Ok(SecurityReport {
            group_id: synced.group_id,
            created: synced.created_group,
            added: synced.added.iter().map(|r| r.to_string()).collect(),
            removed: synced.removed.iter().map(|r| r.to_string()).collect(),
            open_tcp: secgroup::world_tcp_ports(&wanted),
        })
    }

    /// Reads the deployment back and settles what interrupted runs left
    /// (`converge`); its servers are read again if anything changed.
    pub async fn converged(&self) -> Result<Fleet, DeployError> {
        let members = fleet::members(self.nova, self.name).await?;
        let kept = self.kept().await?;
        let serving = self.serving(&members, kept.as_ref()).await?.cloned();
        let (cleaned, changed) = self.converge(&members, serving.as_ref()).await?;
        let members = if changed {
            fleet::members(self.nova, self.name).await?
        } else {
            members
        };
        let serving = serving.and_then(|s| members.iter().find(|m| m.id == s.id).cloned());
        Ok(Fleet {
            members,
            kept,
            serving,
            cleaned,
        })
    }

    /// Cleans up what interrupted runs left: candidates that never got the
    /// address (unless their run may still be going) and role marks the
    /// address contradicts. Returns the servers deleted, and whether
    /// anything changed. A server it stops is waited for until SHUTOFF, so
    /// that what follows finds it stopped (a standby to start again).
    async fn converge(
        &self,
        members: &[Member],
        serving: Option<&Member>,
    ) -> Result<(Vec<String>, bool), DeployError> {
        let now = crate::cloud::time::now();
        let mut cleaned = Vec::new();
        let mut changed = false;
        for m in members {
            let is_serving = serving.is_some_and(|s| s.id == m.id);
            if is_serving {
                if m.role != Some(Role::Serving) {
                    // Killed between the move and the role: the address says.
                    fleet::set_role(self.nova, &m.id, Role::Serving).await?;
                    changed = true;
                    self.progress.say(&format!(
                        "{} has the address: marked serving (an earlier run was interrupted)",
                        m.name
                    ));
                }
                continue;
            }
            match m.role {
                // A run killed on this machine is known dead at once; one
                // on another machine holds its candidate until the lease
                // ends.
                Some(Role::Candidate)
                    if m.lease.is_some_and(|l| l > now)
                        && m.status != ServerStatus::Shutoff
                        && m.status != ServerStatus::Error
                        && owner::liveness(m.owner.as_deref()) != Liveness::Dead =>
                {
                    // Maybe another runner's deploy, still going.
                    self.progress.say(&format!(
                        "{} is a candidate of run {} that may still be running (lease until {} UTC): left alone",
                        m.name,
                        m.run,
                        crate::cloud::time::format_utc(m.lease.unwrap_or(0))
                    ));
                }
                Some(Role::Candidate) | None => {
                    self.nova.delete_server(&m.id).await?;
                    self.progress.say(&format!(
                        "deleted {}: a candidate an interrupted run left",
                        m.name
                    ));
                    cleaned.push(m.name.clone());
                    changed = true;
                }
                Some(Role::Serving) => {
                    // Marked serving, but the address is elsewhere: a
                    // killed run stopped before retiring it, or before
                    // moving the address to it (it is marked first).
                    fleet::set_role(self.nova, &m.id, Role::Standby).await?;
                    self.stop_and_wait(&m.id).await?;
                    self.progress.say(&format!(
                        "{} does not have the address: stopped, kept as a standby",
                        m.name
                    ));
                    changed = true;
                }
                // Still SHUTOFF while powering on: a start was asked for
                // and is under way, and its boot must not be mistaken for
                // the next start's.
                Some(Role::Standby)
                    if m.status == ServerStatus::Active
                        || matches!(
                            m.task_state.as_deref(),
                            Some("powering-on") | Some("powering-off")
                        ) =>
                {
                    // A rollback killed while it started it again.
                    self.stop_and_wait(&m.id).await?;
                    self.progress.say(&format!(
                        "{} is a standby left running by an interrupted run: stopped",
                        m.name
                    ));
                    changed = true;
                }
                // Launched: never a deployment's (ingot launch tags it no
                // deployment); left alone should one be tagged by hand.
                Some(Role::Standby) | Some(Role::Failed) | Some(Role::Launched) => {}
            }
        }
        Ok((cleaned, changed))
    }

    /// Stops the server and waits until it rests SHUTOFF. A start a killed
    /// run (or this one, before Ctrl-C) asked for may still be under way:
    /// Nova then refuses the stop (409), or takes the SHUTOFF it still
    /// shows for done, and the server ends ACTIVE; either way it is asked
    /// again once it is.
    async fn stop_and_wait(&self, id: &str) -> Result<(), DeployError> {
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            match self.nova.stop_server(id).await {
                Ok(()) => {}
                Err(e) if e.status() == Some(409) && Instant::now() < deadline => {}
                Err(e) => return Err(e.into()),
            }
            loop {
                match self.nova.server(id).await? {
                    None => return Ok(()),
                    Some(s) if s.status == ServerStatus::Shutoff && s.task_state.is_none() => {
                        return Ok(())
                    }
                    Some(s) if s.status == ServerStatus::Error => return Ok(()),
                    // What follows reads the state and says what it finds.
                    _ if Instant::now() >= deadline => return Ok(()),
                    Some(s) if s.status == ServerStatus::Active && s.task_state.is_none() => break,
                    _ => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
        }
    }

    /// Until a started server is ACTIVE (or fails), within the boot timeout.
    async fn wait_active(&self, id: &str) -> Result<(), DeployError> {
        let deadline = Instant::now() + Duration::from_secs(self.spec.server.boot_timeout);
        loop {
            match self.nova.server(id).await? {
                Some(s) if s.status == ServerStatus::Active => return Ok(()),
                Some(s) if s.status == ServerStatus::Error => return Ok(()),
                None => return Ok(()),
                _ if Instant::now() >= deadline => return Ok(()),
                _ => tokio::time::sleep(self.opts.poll.min(Duration::from_secs(1))).await,
            }
        }
    }

    /// Waits for the server's boot verdict: `Ok(Ok(()))` when it passed,
    /// `Ok(Err((why, console)))` when it did not. `ingot launch` gates its
    /// server with it too.
    pub(crate) async fn gate(
        &self,
        id: &str,
        tail: ConsoleTail,
    ) -> Result<Result<(), (String, Vec<String>)>, DeployError> {
        let mut guest = ServerGuest {
            nova: self.nova,
            id: id.to_string(),
            tail,
            poll: self.opts.poll,
        };
        let mut verdict = BootVerdict::default();
        let timeout = Duration::from_secs(self.spec.server.boot_timeout);
        let ending = gate::watch(
            &mut guest,
            &mut verdict,
            timeout,
            Duration::ZERO,
            self.progress,
            "booting",
        )
        .await
        .map_err(|e| match e {
            crate::build::BuildError::Cloud(c) => DeployError::Cloud(c),
            other => DeployError::Watch(Box::new(other)),
        })?;
        let console: Vec<String> = verdict.recent.iter().cloned().collect();
        Ok(match ending {
            Ending::Decided { .. } if verdict.ready => Ok(()),
            Ending::Decided { .. } => Err((verdict.failure(), console)),
            Ending::Stopped(how) => Err((format!("{how} before its boot reported"), console)),
            Ending::Failed(why) => Err((format!("Nova: {why}"), console)),
            Ending::TimedOut => Err((
                format!(
                    "no boot verdict on its console within {} s (server.boot_timeout)",
                    timeout.as_secs()
                ),
                console,
            )),
        })
    }

    /// A new server that failed its gate: deleted, or kept on request.
    async fn failed(
        &self,
        id: &str,
        name: &str,
        version: &str,
        why: String,
        console: Vec<String>,
        serving: Option<&Member>,
    ) -> DeployError {
        let fate = self.dispose(id).await;
        DeployError::GateFailed {
            deployment: self.name.to_string(),
            server: name.to_string(),
            version: version.to_string(),
            why,
            serving: serving
                .map(|s| format!("{} keeps serving", s.name))
                .unwrap_or_else(|| "nothing served before".into()),
            fate,
            console,
        }
    }

    /// After Ctrl-C or an error while the new server boots: delete it.
    async fn abandon(&self, id: &str, name: &str) -> String {
        match self.nova.delete_server(id).await {
            Ok(_) => format!("the new server {name} was deleted; the address did not move"),
            Err(e) => format!(
                "the new server {name} ({id}) could not be deleted ({e}): the next deploy or `ingot gc` deletes it; the address did not move"
            ),
        }
    }

    /// Moves the kept address to the server (read back); on a direct
    /// network, the server's own address.
    async fn point(
        &self,
        kept: Option<&Kept>,
        server: &str,
        network_id: &str,
    ) -> Result<(Option<String>, Option<f64>), DeployError> {
        match kept {
            Some(k) => {
                let moved = address::point_at(
                    self.neutron,
                    &k.id,
                    server,
                    Some(network_id),
                    self.opts.move_wait,
                )
                .await?;
                self.progress.say(&format!(
                    "address {} now points at the new server (port {}, {:.1} s)",
                    moved.address, moved.to_port, moved.seconds
                ));
                Ok((Some(moved.address), Some(round(moved.seconds))))
            }
            None => {
                let own = address::server_address(self.neutron, server).await?;
                Ok((own.first().cloned(), None))
            }
        }
    }

    /// A server that passed its gate takes over: the address, checked
    /// through from outside, then the role; the one that served is stopped
    /// and kept, old standbys beyond `keep` go. `Ok(Err((why, back)))`: the
    /// public ports did not answer through the address, which went back to
    /// the server that served (or was detached if none did); nothing else
    /// changed.
    ///
    /// The role comes first: the address never points at a server that is
    /// not marked `serving` or `standby` (both passed a gate). A run killed
    /// between the mark and the move leaves two servers marked serving; the
    /// address says which one serves, and the next run's converge stops
    /// the other and keeps it as a standby.
    async fn take_over(
        &self,
        kept: Option<&Kept>,
        server: &str,
        name: &str,
        network_id: &str,
        serving: Option<&Member>,
        ports: &[u16],
    ) -> Result<Result<TakenOver, (String, String)>, DeployError> {
        fleet::set_role(self.nova, server, Role::Serving).await?;
        match kept {
            Some(k) => self.progress.say(&format!(
                "moving address {} to {name} (marked serving)",
                k.address
            )),
            None => self.progress.say(&format!("{name} marked serving")),
        }
        let (address, switch) = self.point(kept, server, network_id).await?;
        let moved_at = Instant::now();
        let mut probed = Vec::new();
        if let (Some(k), Some(a)) = (kept, &address) {
            match self
                .probe_ports("the kept address", std::slice::from_ref(a), ports)
                .await
            {
                Ok(notes) => probed = notes,
                Err(why) => {
                    let back = match serving {
                        Some(old) => match self.point(kept, &old.id, network_id).await {
                            Ok(_) => format!("went back to {}, which keeps serving", old.name),
                            Err(e) => format!("could not go back to {} ({e})", old.name),
                        },
                        None => match self.neutron.disassociate_floating_ip(&k.id).await {
                            Ok(_) => "was detached: nothing served before".to_string(),
                            Err(e) => format!("could not be detached ({e})"),
                        },
                    };
                    return Ok(Err((why, back)));
                }
            }
        }
        // DNS right after the new server serves, before the old one stops.
        let dns = self
            .point_dns(kept.map(|k| k.address.as_str()), server)
            .await?;
        let previous = self.retire(serving).await?;
        let pruned = self.prune(server).await?;
        Ok(Ok(TakenOver {
            address,
            switch,
            previous,
            pruned,
            probed,
            dns,
            moved_at,
        }))
    }

    /// [`Self::probe_ports`] on a server's own addresses, looked up only
    /// when there is something to probe.
    async fn probe_server(
        &self,
        server: &str,
        ports: &[u16],
    ) -> Result<Result<Vec<String>, String>, DeployError> {
        if !self.spec.security.probe || ports.is_empty() {
            return Ok(Ok(vec![]));
        }
        let own = address::server_address(self.neutron, server).await?;
        Ok(self.probe_ports("its address", &own, ports).await)
    }

    /// A started standby that did not take over: stopped again and kept,
    /// as it was (best effort: the next deploy converges what is left).
    async fn back_to_standby(&self, standby: &Member) {
        let _ = fleet::set_role(self.nova, &standby.id, Role::Standby).await;
        // Nova refuses a stop while a start is under way: stop_and_wait
        // asks again.
        let _ = self.stop_and_wait(&standby.id).await;
    }

    /// A started standby that failed its gate or its probe.
    async fn standby_failed(
        &self,
        standby: &Member,
        serving: Option<&Member>,
        why: String,
        console: Vec<String>,
    ) -> DeployError {
        self.back_to_standby(standby).await;
        DeployError::GateFailed {
            deployment: self.name.to_string(),
            server: standby.name.clone(),
            version: standby.version.clone(),
            why,
            serving: serving
                .map(|s| format!("{} keeps serving", s.name))
                .unwrap_or_else(|| "nothing serves".into()),
            fate: "stopped again and kept".into(),
            console,
        }
    }

    /// Probes the world-open TCP `ports` of each address from the runner:
    /// the notes to report, or why the server is not reachable as declared.
    /// An address the runner cannot reach at all is noted and skipped.
    async fn probe_ports(
        &self,
        what: &str,
        addresses: &[String],
        ports: &[u16],
    ) -> Result<Vec<String>, String> {
        if !self.spec.security.probe || ports.is_empty() {
            return Ok(vec![]);
        }
        let mut notes = Vec::new();
        for a in addresses {
            let Ok(ip) = a.parse::<std::net::IpAddr>() else {
                continue;
            };
            let probes = probe::probe(ip, ports, PROBE_TIMEOUT).await;
            let note = match probe::judge(&probes) {
                Verdict::Nothing => continue,
                Verdict::Reachable { ports } => format!(
                    "{what} {ip}: {} open from the runner",
                    ports
                        .iter()
                        .map(|p| format!("{p}/tcp"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Verdict::Skipped => {
                    format!("{what} {ip}: not reachable from the runner, probe skipped")
                }
                Verdict::Closed { closed, .. } => {
                    return Err(format!(
                        "from the runner, {what} {ip}: {}",
                        probe::describe(&closed)
                    ))
                }
            };
            self.progress.say(&note);
            notes.push(note);
        }
        Ok(notes)
    }

    /// The DNS record follows the address (src/deploy/dns.rs): the kept
    /// floating IP (only checked, as a rule: it does not move), or on a
    /// direct network the serving server's own addresses.
    async fn point_dns(
        &self,
        kept: Option<&str>,
        server: &str,
    ) -> Result<Option<Pointed>, DeployError> {
        let Some(keeper) = self.dns else {
            return Ok(None);
        };
        let addresses = match &self.spec.address {
            AddressSpec::FloatingIp { .. } => kept.map(str::to_string).into_iter().collect(),
            AddressSpec::Direct => address::server_address(self.neutron, server).await?,
        };
        let pointed = keeper.point(&addresses).await?;
        for line in pointed.lines() {
            self.progress.say(&line);
        }
        Ok(Some(pointed))
    }

    /// A new server that failed after its gate: deleted, or kept on
    /// request; its fate in words.
    async fn dispose(&self, id: &str) -> String {
        if self.opts.keep_failed {
            match fleet::set_role(self.nova, id, Role::Failed).await {
                Ok(()) => "kept (--keep-failed)".to_string(),
                Err(e) => format!("meant to be kept, but marking it failed failed: {e}"),
            }
        } else {
            match self.nova.delete_server(id).await {
                Ok(_) => "deleted".to_string(),
                Err(e) => format!("NOT deleted ({e}); `ingot gc` or the next deploy deletes it"),
            }
        }
    }

    /// The server that served before: stopped, kept as a standby.
    async fn retire(&self, serving: Option<&Member>) -> Result<Option<String>, DeployError> {
        let Some(old) = serving else {
            return Ok(None);
        };
        self.nova.stop_server(&old.id).await?;
        fleet::set_role(self.nova, &old.id, Role::Standby).await?;
        self.progress.say(&format!(
            "stopped {} (release {}): kept for a rollback",
            old.name, old.version
        ));
        Ok(Some(old.name.clone()))
    }

    /// Standby servers beyond `keep`, oldest first, are deleted.
    async fn prune(&self, serving: &str) -> Result<Vec<String>, DeployError> {
        let members = fleet::members(self.nova, self.name).await?;
        let mut pruned = Vec::new();
        let standby: Vec<&Member> = members
            .iter()
            .filter(|m| m.id != serving && m.role == Some(Role::Standby))
            .collect();
        for m in standby.iter().skip(self.spec.keep as usize) {
            self.nova.delete_server(&m.id).await?;
            self.progress.say(&format!(
                "deleted {} (release {}): more than keep: {} standby server(s)",
                m.name, m.version, self.spec.keep
            ));
            pruned.push(m.name.clone());
        }
        Ok(pruned)
    }
}

/// Neutron creates a new group with one egress rule per IP version.
const DEFAULT_EGRESS_RULES: u64 = 2;

/// What a deploy needs of Neutron's quotas that the project has not left.
fn quota_problems(
    q: &NetworkQuotas,
    new_address: bool,
    new_group: bool,
    new_rules: u64,
) -> Vec<String> {
    let rules = new_rules + if new_group { DEFAULT_EGRESS_RULES } else { 0 };
    [
        (q.floating_ips, u64::from(new_address), "floating IP", "release an unused one (`openstack floating ip list`) or ask for more"),
        (q.security_groups, u64::from(new_group), "security group", "delete an unused one or ask for more"),
        (q.security_group_rules, rules, "security group rule", "delete unused rules or groups, or ask for more"),
    ]
    .into_iter()
    .filter_map(|(quota, need, what, hint)| {
        let free = quota.remaining()?;
        (need > free).then(|| {
            format!(
                "quota: this deploy needs {need} {what}(s), the project has {free} of {} free; {hint}",
                quota.max.unwrap_or(0)
            )
        })
    })
    .collect()
}

/// What a take-over did.
struct TakenOver {
    address: Option<String>,
    switch: Option<f64>,
    previous: Option<String>,
    pruned: Vec<String>,
    probed: Vec<String>,
    dns: Option<Pointed>,
    /// When the address was read back on the new server.
    moved_at: Instant,
}

impl TakenOver {
    /// See [`Outcome::serving_after_seconds`]: only when an address moved.
    fn serving_after(&self, started: Instant, boot_seconds: f64) -> Option<f64> {
        self.switch.map(|_| {
            round((self.moved_at.duration_since(started).as_secs_f64() - boot_seconds).max(0.0))
        })
    }
}

/// Each connect of a probe: long enough for a far cloud, short enough
/// that an unreachable address costs a deploy a few seconds at most.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long converge waits for a server it stops.
const STOP_WAIT: Duration = Duration::from_secs(120);

/// Ctrl-C that came once the switch had begun: the switch was finished
/// (a fleet half switched helps nobody), and the exit code still says
/// Ctrl-C.
fn switched_anyway(name: &str, version: &str, previous: Option<&str>) -> DeployError {
    DeployError::Cancelled {
        cleanup: format!(
            "the switch had begun and was finished: {name} serves release {version}{}",
            previous
                .map(|p| format!(", {p} is stopped and kept"))
                .unwrap_or_default()
        ),
    }
}

/// A version in a server name: Nova accepts most text, DNS-minded
/// hostnames derived from it do not.
fn sanitize(version: &str) -> String {
    version
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn round(s: f64) -> f64 {
    (s.max(0.0) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_name_what_is_short_and_how_to_free_it() {
        use crate::cloud::compute::Quota;
        let q = NetworkQuotas {
            floating_ips: Quota::new(2, 2),
            security_groups: Quota::new(10, 9),
            security_group_rules: Quota::new(100, 95),
        };
        // A first deploy of jitsi: an address, a group, 8 rules (+2 egress).
        assert_eq!(
            quota_problems(&q, true, true, 8),
            [
                "quota: this deploy needs 1 floating IP(s), the project has 0 of 2 free; release an unused one (`openstack floating ip list`) or ask for more",
                "quota: this deploy needs 10 security group rule(s), the project has 5 of 100 free; delete unused rules or groups, or ask for more",
            ]
        );
        // The next deploy: the address and the group exist, one rule more.
        assert!(quota_problems(&q, false, false, 1).is_empty());
        // Unlimited is never short.
        let open = NetworkQuotas {
            floating_ips: Quota::new(-1, 40),
            security_groups: Quota::new(-1, 0),
            security_group_rules: Quota::new(-1, 0),
        };
        assert!(quota_problems(&open, true, true, 1000).is_empty());
    }

    #[test]
    fn versions_become_name_parts() {
        assert_eq!(sanitize("2026.1.0"), "2026-1-0");
        assert_eq!(sanitize("1.0.0+b1"), "1-0-0-b1");
    }
}
