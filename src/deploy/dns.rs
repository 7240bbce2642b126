//! The deployment's DNS record (Designate): when the deployment names a
//! zone, the A (IPv4) and AAAA (IPv6) recordsets of its fqdn hold the
//! address that serves — the kept floating IP, or on a direct network the
//! serving server's own addresses.
//!
//! - [`Keeper::prepare`] is the preflight: a `dns` service in the catalog,
//!   the zone in it, `params.fqdn` inside the zone; [`Keeper::check_owner`]
//!   refuses, before anything is created, a record of that name ingot did
//!   not make for this deployment (it is never overwritten).
//! - [`Keeper::point`] converges the recordsets: created once (marked by
//!   [`deployment_description`], Designate has no tags), corrected when
//!   their records or TTL drifted, left alone otherwise (one read when
//!   nothing changed), each write waited for until Designate says ACTIVE
//!   and read back.
//! - [`view`] is `ingot status`'s part: the records, and what the system
//!   resolver makes of the name, bounded in time ([`resolve`]).
//! - [`Keeper::delete`] is `destroy --delete-dns`; [`Keeper::ours`] says
//!   what stays without it.

use crate::cloud::dns::{
    self as designate, deployment_description, DnsAction, DnsService, DnsStatus, NewRecordset,
    RecordType, Recordset, Zone,
};
use crate::cloud::CloudError;
use crate::model::deployment::{Deployment, DnsSpec};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How long a change may stay PENDING before it counts as not taken. The
/// playground's Designate takes a few seconds; a real one about as much.
const SETTLE: Duration = Duration::from_secs(90);
/// How long `status` waits for the system resolver.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// The types of recordset at the deployment's name that are the
/// deployment's business: the two it writes, and CNAME, which Designate
/// refuses beside them.
const AT_NAME: [RecordType; 3] = [RecordType::A, RecordType::Aaaa, RecordType::Cname];

#[derive(Debug, Error)]
pub enum DnsError {
    #[error("deployment {deployment} names DNS zone {zone}, but the cloud offers no DNS service ({why}): remove `dns:` from the deployment file, or deploy to a cloud with Designate")]
    NoService {
        deployment: String,
        zone: String,
        /// The catalog's answer (which services it does offer).
        why: String,
    },
    #[error("deployment {deployment}: dns.zone {zone}: no such zone in Designate for this project (zones: {}){}",
        if zones.is_empty() { "none".to_string() } else { zones.join(", ") },
        suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_default())]
    NoZone {
        deployment: String,
        zone: String,
        zones: Vec<String>,
        suggestion: Option<String>,
    },
    #[error("deployment {deployment} names DNS zone {zone} but has no params.fqdn: the record's name is the fqdn its servers are given; add `fqdn: <name>.{}` under params", zone.trim_end_matches('.'))]
    NoFqdn { deployment: String, zone: String },
    #[error("deployment {deployment}: params.fqdn {value:?} is not a DNS name: {why}")]
    BadFqdn {
        deployment: String,
        /// Shown with `{:?}`: control characters come out escaped.
        value: String,
        why: String,
    },
    #[error("deployment {deployment}: params.fqdn {fqdn} is not inside dns.zone {zone}: expected {zone} itself or a name ending in .{zone}")]
    OutsideZone {
        deployment: String,
        fqdn: String,
        zone: String,
    },
    #[error("DNS record {name} {record_type} ({}) was not made by ingot for deployment {deployment} ({}): ingot does not overwrite it; delete it, or choose another params.fqdn",
        if records.is_empty() { "no records".to_string() } else { records.join(", ") },
        match owner { Some(o) => format!("it belongs to deployment {o}"), None if description.is_empty() => "it has no description".to_string(), None => format!("its description: {description:?}") })]
    NotOurs {
        deployment: String,
        name: String,
        record_type: RecordType,
        records: Vec<String>,
        description: String,
        /// The other deployment it is marked for, if any.
        owner: Option<String>,
    },
    #[error(
        "deployment {deployment}: no address to put in DNS record {name} (the server has none)"
    )]
    NoAddress { deployment: String, name: String },
    #[error("deployment {deployment}: {address:?} is not an IP address, it cannot go in DNS record {name}")]
    BadAddress {
        deployment: String,
        name: String,
        address: String,
    },
    #[error("DNS record {name} {record_type}: Designate did not take the change (status {status}, action {action})")]
    Refused {
        name: String,
        record_type: RecordType,
        status: DnsStatus,
        action: DnsAction,
    },
    #[error("DNS record {name} {record_type}: still {status} after {seconds} s; Designate has not applied the change yet (the next deploy checks again)")]
    NotSettled {
        name: String,
        record_type: RecordType,
        status: String,
        seconds: u64,
    },
    #[error("DNS record {name} {record_type}: read back {got}, expected {wanted}")]
    ReadBack {
        name: String,
        record_type: RecordType,
        got: String,
        wanted: String,
    },
    #[error("{what}: {source}")]
    Cloud {
        what: String,
        #[source]
        source: Box<CloudError>,
    },
}

impl DnsError {
    /// Input the user must fix (exit code 2), as opposed to a failure.
    pub fn is_input(&self) -> bool {
        match self {
            DnsError::NoService { .. }
            | DnsError::NoZone { .. }
            | DnsError::NoFqdn { .. }
            | DnsError::BadFqdn { .. }
            | DnsError::OutsideZone { .. }
            | DnsError::NotOurs { .. } => true,
            DnsError::Cloud { source, .. } => source.is_input(),
            _ => false,
        }
    }
}

fn cloud(what: impl fmt::Display) -> impl FnOnce(CloudError) -> DnsError {
    let what = what.to_string();
    move |source| DnsError::Cloud {
        what,
        source: Box::new(source),
    }
}

/// A zone name as Designate spells it: lower case, final dot.
fn zone_name(zone: &str) -> String {
    let z = zone.trim().to_ascii_lowercase();
    if z.ends_with('.') {
        z
    } else {
        format!("{z}.")
    }
}

/// The record's name: the deployment's `params.fqdn`, made absolute (final
/// dot, lower case), checked to be a host name inside `zone`.
pub fn record_name(deployment: &str, spec: &Deployment, zone: &str) -> Result<String, DnsError> {
    let zone = zone_name(zone);
    let value = match spec.params.get("fqdn") {
        None => {
            return Err(DnsError::NoFqdn {
                deployment: deployment.into(),
                zone,
            })
        }
        Some(serde_yaml::Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(DnsError::BadFqdn {
                deployment: deployment.into(),
                value: serde_yaml::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                why: "expected a string".into(),
            })
        }
    };
    let bad = |why: String| DnsError::BadFqdn {
        deployment: deployment.into(),
        value: value.clone(),
        why,
    };
    let name = designate::fqdn(&value).map_err(|e| bad(e.to_string()))?;
    let name = name.to_ascii_lowercase();
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() {
            return Err(bad("it has an empty label (two dots in a row)".into()));
        }
        if label.len() > 63 {
            return Err(bad(format!(
                "label {label:?} is {} characters; at most 63",
                label.len()
            )));
        }
        // `*` would be a wildcard record, and a wildcard in Designate's
        // filters; anything else is not a host name.
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(format!(
                "label {label:?}: expected letters, digits, `-` or `_`"
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad(format!("label {label:?} begins or ends with `-`")));
        }
    }
    if name != zone && !name.ends_with(&format!(".{zone}")) {
        return Err(DnsError::OutsideZone {
            deployment: deployment.into(),
            fqdn: name,
            zone,
        });
    }
    Ok(name)
}

/// The DNS service, or why the deployment cannot have DNS: a catalog
/// without `dns` is the user's to fix.
fn dns_service<D>(
    deployment: &str,
    zone: &str,
    service: Result<D, CloudError>,
) -> Result<D, DnsError> {
    match service {
        Ok(d) => Ok(d),
        Err(e @ CloudError::NoEndpoint { .. }) => Err(DnsError::NoService {
            deployment: deployment.into(),
            zone: zone_name(zone),
            why: e.to_string(),
        }),
        Err(e) => Err(cloud("looking for the DNS service in the catalog")(e)),
    }
}

/// The deployment's record in one zone, once the preflight found both.
pub struct Keeper<D> {
    service: D,
    deployment: String,
    zone: Zone,
    /// Absolute, lower case.
    name: String,
    ttl: u32,
}

/// What one recordset went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Done {
    Created,
    Corrected,
    Unchanged,
    /// An own recordset of a type no longer wanted (an AAAA after a move
    /// to an IPv4-only address).
    Deleted,
}

impl Done {
    fn as_str(self) -> &'static str {
        match self {
            Done::Created => "created",
            Done::Corrected => "corrected",
            Done::Unchanged => "unchanged",
            Done::Deleted => "deleted",
        }
    }
}

/// What a recordset held before it was corrected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Was {
    pub records: Vec<String>,
    pub ttl: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    #[serde(rename = "type")]
    pub record_type: RecordType,
    pub id: String,
    /// As read back (empty once deleted).
    pub records: Vec<String>,
    pub ttl: Option<u32>,
    pub status: DnsStatus,
    pub done: Done,
    /// Before a correction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was: Option<Was>,
}

/// What [`Keeper::point`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pointed {
    pub zone: String,
    pub name: String,
    pub ttl: u32,
    pub records: Vec<Change>,
}

impl Pointed {
    /// Whether anything was written.
    pub fn changed(&self) -> bool {
        self.records.iter().any(|c| c.done != Done::Unchanged)
    }

    /// One line per recordset, for progress and the deploy's report.
    pub fn lines(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|c| {
                let mut line = match c.done {
                    Done::Deleted => format!("dns {} {}: deleted", self.name, c.record_type),
                    done => format!(
                        "dns {} {} → {} (ttl {}): {}",
                        self.name,
                        c.record_type,
                        c.records.join(", "),
                        ttl_text(c.ttl),
                        done.as_str()
                    ),
                };
                if let Some(w) = &c.was {
                    line.push_str(&format!(
                        " (was {}, ttl {})",
                        if w.records.is_empty() {
                            "empty".to_string()
                        } else {
                            w.records.join(", ")
                        },
                        ttl_text(w.ttl)
                    ));
                }
                line
            })
            .collect()
    }
}

fn ttl_text(ttl: Option<u32>) -> String {
    ttl.map(|t| t.to_string())
        .unwrap_or_else(|| "the zone's".into())
}

/// One step of converging the recordsets at the name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Create {
        record_type: RecordType,
        records: Vec<String>,
    },
    Update {
        existing: Recordset,
        records: Vec<String>,
    },
    Keep(Recordset),
    Delete(Recordset),
}

/// The addresses by record type, each list sorted and as IP addresses
/// print (IPv6 compressed), so that they compare with what Designate holds.
fn wanted(
    deployment: &str,
    name: &str,
    addresses: &[String],
) -> Result<Vec<(RecordType, Vec<String>)>, DnsError> {
    let mut v4: Vec<IpAddr> = Vec::new();
    let mut v6: Vec<IpAddr> = Vec::new();
    for a in addresses {
        let ip: IpAddr = a.trim().parse().map_err(|_| DnsError::BadAddress {
            deployment: deployment.into(),
            name: name.into(),
            address: a.clone(),
        })?;
        match ip {
            IpAddr::V4(_) => v4.push(ip),
            IpAddr::V6(_) => v6.push(ip),
        }
    }
    if v4.is_empty() && v6.is_empty() {
        return Err(DnsError::NoAddress {
            deployment: deployment.into(),
            name: name.into(),
        });
    }
    let text = |mut ips: Vec<IpAddr>| {
        ips.sort();
        ips.dedup();
        ips.iter().map(IpAddr::to_string).collect::<Vec<_>>()
    };
    Ok(vec![
        (RecordType::A, text(v4)),
        (RecordType::Aaaa, text(v6)),
    ])
}

/// The records of a recordset in the form [`wanted`] gives (what does not
/// parse as an address is kept as it is, and so never equal).
fn normalized(records: &[String]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|r| {
            r.parse::<IpAddr>()
                .map(|ip| ip.to_string())
                .unwrap_or_else(|_| r.clone())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The recordset is the deployment's: ingot made it for this one.
fn is_ours(deployment: &str, r: &Recordset) -> bool {
    r.description == deployment_description(deployment)
}

fn not_ours(deployment: &str, r: &Recordset) -> DnsError {
    DnsError::NotOurs {
        deployment: deployment.into(),
        name: r.name.clone(),
        record_type: r.record_type,
        records: r.records.clone(),
        description: r.description.clone(),
        owner: r.deployment().map(str::to_string),
    }
}

/// From what is at the name to what should be: a recordset of the name
/// that is not the deployment's is an error, never overwritten.
fn plan(
    deployment: &str,
    existing: &[Recordset],
    wanted: &[(RecordType, Vec<String>)],
    ttl: u32,
) -> Result<Vec<Step>, DnsError> {
    if let Some(foreign) = existing
        .iter()
        .find(|r| AT_NAME.contains(&r.record_type) && !is_ours(deployment, r))
    {
        return Err(not_ours(deployment, foreign));
    }
    let mut steps = Vec::new();
    for (record_type, records) in wanted {
        let have = existing.iter().find(|r| r.record_type == *record_type);
        match (records.is_empty(), have) {
            (true, None) => {}
            (true, Some(h)) => steps.push(Step::Delete(h.clone())),
            (false, None) => steps.push(Step::Create {
                record_type: *record_type,
                records: records.clone(),
            }),
            (false, Some(h)) if normalized(&h.records) == *records && h.ttl == Some(ttl) => {
                steps.push(Step::Keep(h.clone()))
            }
            (false, Some(h)) => steps.push(Step::Update {
                existing: h.clone(),
                records: records.clone(),
            }),
        }
    }
    Ok(steps)
}

impl<D: DnsService> Keeper<D> {
    /// The preflight: the DNS service (`service` is the catalog's answer),
    /// the record's name inside the zone, the zone in Designate. Reads
    /// only.
    pub async fn prepare(
        service: Result<D, CloudError>,
        deployment: &str,
        spec: &Deployment,
        zone: &str,
        ttl: u32,
    ) -> Result<Keeper<D>, DnsError> {
        let name = record_name(deployment, spec, zone)?;
        let service = dns_service(deployment, zone, service)?;
        let wanted = zone_name(zone);
        let found = service
            .zone_by_name(&wanted)
            .await
            .map_err(cloud(format_args!("looking up DNS zone {wanted}")))?;
        let Some(zone) = found else {
            let zones: Vec<String> = service
                .zones(&[])
                .await
                .map_err(cloud("listing the DNS zones"))?
                .into_iter()
                .map(|z| z.name)
                .collect();
            return Err(DnsError::NoZone {
                deployment: deployment.into(),
                suggestion: crate::suggest::did_you_mean(&wanted, &zones),
                zone: wanted,
                zones,
            });
        };
        Ok(Keeper {
            service,
            deployment: deployment.into(),
            zone,
            name,
            ttl,
        })
    }

    /// The record's name, absolute.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn zone(&self) -> &str {
        &self.zone.name
    }

    /// The A, AAAA and CNAME recordsets at the name.
    async fn at_name(&self) -> Result<Vec<Recordset>, DnsError> {
        let mut all = self
            .service
            .recordsets(&self.zone.id, &[("name", self.name.as_str())])
            .await
            .map_err(cloud(format_args!("reading DNS records of {}", self.name)))?;
        // The filter is Designate's (case-insensitive, `*` a wildcard):
        // only the exact name counts.
        all.retain(|r| r.name.eq_ignore_ascii_case(&self.name) && AT_NAME.contains(&r.record_type));
        all.sort_by_key(|r| r.record_type);
        Ok(all)
    }

    /// Before anything is created: a recordset at the name ingot did not
    /// make for this deployment is an error.
    pub async fn check_owner(&self) -> Result<(), DnsError> {
        match self
            .at_name()
            .await?
            .iter()
            .find(|r| !is_ours(&self.deployment, r))
        {
            Some(r) => Err(not_ours(&self.deployment, r)),
            None => Ok(()),
        }
    }

    /// Makes the name's A/AAAA recordsets hold exactly `addresses` with the
    /// deployment's TTL: one read when they already do; otherwise each
    /// write is waited for (ACTIVE) and read back.
    pub async fn point(&self, addresses: &[String]) -> Result<Pointed, DnsError> {
        let wanted = wanted(&self.deployment, &self.name, addresses)?;
        let existing = self.at_name().await?;
        let steps = plan(&self.deployment, &existing, &wanted, self.ttl)?;
        let mut changes = Vec::new();
        for step in steps {
            changes.push(self.apply(step).await?);
        }
        for c in changes.iter_mut() {
            let records = wanted
                .iter()
                .find(|(t, _)| *t == c.record_type)
                .map(|(_, r)| r.clone())
                .unwrap_or_default();
            if c.done == Done::Unchanged {
                continue;
            }
            let settled = self
                .settle(&c.id, c.record_type, c.done == Done::Deleted)
                .await?;
            if let Some(r) = settled {
                let got = normalized(&r.records);
                if got != records || r.ttl != Some(self.ttl) {
                    return Err(DnsError::ReadBack {
                        name: self.name.clone(),
                        record_type: c.record_type,
                        got: format!("{} (ttl {})", got.join(", "), ttl_text(r.ttl)),
                        wanted: format!("{} (ttl {})", records.join(", "), self.ttl),
                    });
                }
                c.records = r.records;
                c.ttl = r.ttl;
                c.status = r.status;
            } else {
                c.records.clear();
            }
        }
        Ok(Pointed {
            zone: self.zone.name.clone(),
            name: self.name.clone(),
            ttl: self.ttl,
            records: changes,
        })
    }

    async fn apply(&self, step: Step) -> Result<Change, DnsError> {
        let change = |r: &Recordset, done: Done, was: Option<Was>| Change {
            record_type: r.record_type,
            id: r.id.clone(),
            records: r.records.clone(),
            ttl: r.ttl,
            status: r.status,
            done,
            was,
        };
        match step {
            Step::Keep(r) => Ok(change(&r, Done::Unchanged, None)),
            Step::Create {
                record_type,
                records,
            } => {
                let new = NewRecordset {
                    name: self.name.clone(),
                    record_type,
                    records,
                    ttl: Some(self.ttl),
                    description: Some(deployment_description(&self.deployment)),
                };
                let created = match self.service.create_recordset(&self.zone.id, &new).await {
                    Ok(r) => r,
                    // A create is not retried: after a lost answer (or a
                    // create of a concurrent deploy), the name says.
                    Err(e) => match self
                        .at_name()
                        .await?
                        .into_iter()
                        .find(|r| r.record_type == record_type)
                    {
                        Some(r) if is_ours(&self.deployment, &r) => r,
                        _ => {
                            return Err(cloud(format_args!(
                                "creating DNS record {} {record_type}",
                                self.name
                            ))(e))
                        }
                    },
                };
                Ok(change(&created, Done::Created, None))
            }
            Step::Update { existing, records } => {
                let updated = self
                    .service
                    .update_recordset(&self.zone.id, &existing.id, &records, Some(self.ttl))
                    .await
                    .map_err(cloud(format_args!(
                        "correcting DNS record {} {}",
                        self.name, existing.record_type
                    )))?;
                let was = Was {
                    records: existing.records.clone(),
                    ttl: existing.ttl,
                };
                Ok(change(&updated, Done::Corrected, Some(was)))
            }
            Step::Delete(r) => {
                self.service
                    .delete_recordset(&self.zone.id, &r.id)
                    .await
                    .map_err(cloud(format_args!(
                        "deleting DNS record {} {}",
                        self.name, r.record_type
                    )))?;
                Ok(change(&r, Done::Deleted, None))
            }
        }
    }

    /// Until Designate has the change: ACTIVE (`Some`), or gone (`None`)
    /// for a delete.
    async fn settle(
        &self,
        id: &str,
        record_type: RecordType,
        gone: bool,
    ) -> Result<Option<Recordset>, DnsError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(250);
        loop {
            let r = self
                .service
                .recordset(&self.zone.id, id)
                .await
                .map_err(cloud(format_args!(
                    "reading back DNS record {} {record_type}",
                    self.name
                )))?;
            match &r {
                None if gone => return Ok(None),
                None => {
                    return Err(DnsError::ReadBack {
                        name: self.name.clone(),
                        record_type,
                        got: "nothing (deleted meanwhile)".into(),
                        wanted: "the record".into(),
                    })
                }
                Some(r) if r.status == DnsStatus::Error => {
                    return Err(DnsError::Refused {
                        name: self.name.clone(),
                        record_type,
                        status: r.status,
                        action: r.action,
                    })
                }
                Some(r) if !gone && r.status == DnsStatus::Active => return Ok(Some(r.clone())),
                _ => {}
            }
            if start.elapsed() >= SETTLE {
                return Err(DnsError::NotSettled {
                    name: self.name.clone(),
                    record_type,
                    status: r
                        .map(|r| format!("{} ({})", r.status, r.action))
                        .unwrap_or_default(),
                    seconds: SETTLE.as_secs(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// The deployment's own recordsets at the name (what `destroy` leaves
    /// without `--delete-dns`).
    pub async fn ours(&self) -> Result<Vec<Recordset>, DnsError> {
        let mut mine = self.at_name().await?;
        mine.retain(|r| is_ours(&self.deployment, r));
        Ok(mine)
    }

    /// Deletes the deployment's own recordsets at the name (never another
    /// one) and waits until they are gone.
    pub async fn delete(&self) -> Result<Vec<Recordset>, DnsError> {
        let mine = self.ours().await?;
        for r in &mine {
            self.apply(Step::Delete(r.clone())).await?;
        }
        for r in &mine {
            self.settle(&r.id, r.record_type, true).await?;
        }
        Ok(mine)
    }
}

/// A recordset as `status` and `destroy` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordView {
    #[serde(rename = "type")]
    pub record_type: RecordType,
    pub records: Vec<String>,
    pub ttl: Option<u32>,
    pub status: DnsStatus,
    pub action: DnsAction,
    /// Made by ingot for this deployment.
    pub ours: bool,
}

impl From<&Recordset> for RecordView {
    fn from(r: &Recordset) -> Self {
        RecordView {
            record_type: r.record_type,
            records: r.records.clone(),
            ttl: r.ttl,
            status: r.status,
            action: r.action,
            ours: false,
        }
    }
}

impl fmt::Display for RecordView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ttl {} {}",
            self.record_type,
            self.records.join(", "),
            ttl_text(self.ttl),
            self.status
        )?;
        if self.action != DnsAction::Nothing {
            write!(f, " ({})", self.action)?;
        }
        if !self.ours {
            f.write_str(" (not made by ingot for this deployment)")?;
        }
        Ok(())
    }
}

/// What the system resolver says of the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Resolution {
    /// Exactly the expected addresses.
    Matches {
        addresses: Vec<String>,
    },
    /// Other addresses (or only some of them).
    Elsewhere {
        addresses: Vec<String>,
    },
    DoesNotResolve {
        why: String,
    },
    TimedOut {
        seconds: u64,
    },
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolution::Matches { addresses } => {
                write!(f, "resolves to {}", addresses.join(", "))
            }
            Resolution::Elsewhere { addresses } => write!(
                f,
                "resolves to {}, not (only) to the deployment's address",
                addresses.join(", ")
            ),
            Resolution::DoesNotResolve { why } => write!(f, "does not resolve ({why})"),
            Resolution::TimedOut { seconds } => {
                write!(f, "does not resolve (no answer within {seconds} s)")
            }
        }
    }
}

/// Looks `name` up through the system resolver (getaddrinfo, as every
/// client of the deployment would), for at most `timeout`. The look-up
/// runs on a thread of its own that is not waited for: a resolver that
/// hangs cannot hang ingot, not even at exit.
pub async fn resolve(name: &str, timeout: Duration) -> Result<Vec<IpAddr>, Resolution> {
    use std::net::ToSocketAddrs;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let host = name.to_string();
    let spawned = std::thread::Builder::new()
        .name("ingot-resolve".into())
        .spawn(move || {
            let _ = tx.send((host.as_str(), 0u16).to_socket_addrs().map(|a| {
                let mut ips: Vec<IpAddr> = a.map(|s| s.ip()).collect();
                ips.sort();
                ips.dedup();
                ips
            }));
        });
    if let Err(e) = spawned {
        return Err(Resolution::DoesNotResolve {
            why: format!("no thread for the look-up: {e}"),
        });
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(ips))) if !ips.is_empty() => Ok(ips),
        Ok(Ok(Ok(_))) => Err(Resolution::DoesNotResolve {
            why: "no addresses".into(),
        }),
        Ok(Ok(Err(e))) => Err(Resolution::DoesNotResolve { why: e.to_string() }),
        Ok(Err(_)) => Err(Resolution::DoesNotResolve {
            why: "the look-up ended without an answer".into(),
        }),
        Err(_) => Err(Resolution::TimedOut {
            seconds: timeout.as_secs(),
        }),
    }
}

/// Resolved addresses against the expected ones.
fn judge(resolved: Vec<IpAddr>, expected: &[String]) -> Resolution {
    let got: Vec<String> = resolved.iter().map(IpAddr::to_string).collect();
    if !expected.is_empty() && normalized(expected) == normalized(&got) {
        Resolution::Matches { addresses: got }
    } else {
        Resolution::Elsewhere { addresses: got }
    }
}

/// `ingot status`'s DNS part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsView {
    pub zone: String,
    /// The record's name (absolute), when the deployment gives a valid one.
    pub name: Option<String>,
    pub records: Vec<RecordView>,
    /// The addresses the record should hold: the kept floating IP, or the
    /// serving server's own.
    pub expected: Vec<String>,
    /// Designate's own records hold exactly `expected`, with the TTL.
    pub in_sync: bool,
    pub ttl: u32,
    /// What the system resolver says (none without a name).
    pub resolver: Option<Resolution>,
    /// Why Designate could not be read (no service, no zone, …).
    pub problem: Option<String>,
}

/// What `status` shows of the deployment's record: never an error, a
/// problem reading Designate is part of the answer.
pub async fn view<D: DnsService>(
    service: Result<D, CloudError>,
    deployment: &str,
    spec: &Deployment,
    dns: &DnsSpec,
    expected: Vec<String>,
) -> DnsView {
    let mut out = DnsView {
        zone: zone_name(&dns.zone),
        name: None,
        records: vec![],
        expected,
        in_sync: false,
        ttl: dns.ttl,
        resolver: None,
        problem: None,
    };
    match record_name(deployment, spec, &dns.zone) {
        Ok(n) => out.name = Some(n),
        Err(e) => {
            out.problem = Some(e.to_string());
            return out;
        }
    }
    let name = out.name.clone().unwrap_or_default();
    let designate = async {
        let keeper = Keeper::prepare(service, deployment, spec, &dns.zone, dns.ttl).await?;
        let records = keeper.at_name().await?;
        Ok::<_, DnsError>(records)
    };
    // Designate and the resolver at once: the resolver may take seconds.
    let (records, resolved) = tokio::join!(designate, resolve(&name, RESOLVE_TIMEOUT));
    match records {
        Ok(records) => {
            out.records = records
                .iter()
                .map(|r| RecordView {
                    ours: is_ours(deployment, r),
                    ..RecordView::from(r)
                })
                .collect();
            out.in_sync = wanted(deployment, &name, &out.expected)
                .and_then(|w| plan(deployment, &records, &w, dns.ttl))
                .is_ok_and(|steps| steps.iter().all(|s| matches!(s, Step::Keep(_))));
        }
        Err(e) => out.problem = Some(e.to_string()),
    }
    out.resolver = Some(match resolved {
        Ok(ips) => judge(ips, &out.expected),
        Err(r) => r,
    });
    out
}

/// What `destroy` did with the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DnsLeft {
    pub name: String,
    /// Deleted (`--delete-dns`), e.g. `A 203.0.113.7`.
    pub deleted: Vec<String>,
    /// Left in place (no `--delete-dns`).
    pub kept: Vec<String>,
}

impl DnsLeft {
    pub fn describe(r: &Recordset) -> String {
        format!("{} {}", r.record_type, r.records.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(params: &str) -> Deployment {
        serde_yaml::from_str(&format!(
            "schema: 1\nimage: web\n{params}\nserver: {{flavor: f, network: n}}\naddress: {{direct: {{}}}}\ndns: {{zone: playground.test.}}\n"
        ))
        .unwrap()
    }

    #[test]
    fn the_name_is_the_fqdn_made_absolute_inside_the_zone() {
        for (fqdn, zone) in [
            ("web.playground.test", "playground.test."),
            ("Web.Playground.Test.", "playground.test"),
            ("playground.test", "playground.test."),
            ("a.b_c.playground.test", "PLAYGROUND.test"),
        ] {
            let got = record_name("web", &spec(&format!("params: {{fqdn: {fqdn:?}}}")), zone);
            let want = fqdn.to_ascii_lowercase().trim_end_matches('.').to_string() + ".";
            assert_eq!(got.unwrap(), want, "{fqdn} in {zone}");
        }
        let cases = [
            (
                "params: {port: 80}",
                "deployment web names DNS zone playground.test. but has no params.fqdn: the record's name is the fqdn its servers are given; add `fqdn: <name>.playground.test` under params",
            ),
            (
                "params: {fqdn: web.example.org}",
                "deployment web: params.fqdn web.example.org. is not inside dns.zone playground.test.: expected playground.test. itself or a name ending in .playground.test.",
            ),
            (
                "params: {fqdn: xplayground.test}",
                "params.fqdn xplayground.test. is not inside dns.zone playground.test.",
            ),
            (
                "params: {fqdn: 42}",
                "deployment web: params.fqdn \"42\" is not a DNS name: expected a string",
            ),
            (
                "params: {fqdn: \"*.playground.test\"}",
                "params.fqdn \"*.playground.test\" is not a DNS name: label \"*\": expected letters, digits, `-` or `_`",
            ),
            (
                "params: {fqdn: \"a..playground.test\"}",
                "it has an empty label",
            ),
            (
                "params: {fqdn: \"we b\\n.playground.test\"}",
                "params.fqdn \"we b\\n.playground.test\" is not a DNS name",
            ),
            (
                "params: {fqdn: \"-web.playground.test\"}",
                "label \"-web\" begins or ends with `-`",
            ),
            ("params: {fqdn: \"\"}", "is not a DNS name: the name is empty"),
        ];
        for (params, want) in cases {
            let e = record_name("web", &spec(params), "playground.test.").unwrap_err();
            assert!(
                e.to_string().contains(want),
                "{params}\n→ {e}\nwanted {want}"
            );
            assert!(e.is_input(), "{e}");
        }
    }

    fn rs(t: RecordType, records: &[&str], ttl: Option<u32>, description: &str) -> Recordset {
        Recordset {
            id: format!("id-{t}"),
            zone_id: "z".into(),
            name: "web.playground.test.".into(),
            record_type: t,
            records: records.iter().map(|s| s.to_string()).collect(),
            ttl,
            status: DnsStatus::Active,
            action: DnsAction::Nothing,
            description: description.into(),
        }
    }

    const OURS: &str = "ingot deployment web";

    #[test]
    fn addresses_split_into_a_and_aaaa() {
        let w = wanted(
            "web",
            "n.",
            &[
                "2001:db8:0:0::10".into(),
                "198.51.100.9".into(),
                "198.51.100.10".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            w,
            vec![
                (
                    RecordType::A,
                    vec!["198.51.100.9".into(), "198.51.100.10".into()]
                ),
                (RecordType::Aaaa, vec!["2001:db8::10".into()]),
            ]
        );
        let e = wanted("web", "n.", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "deployment web: no address to put in DNS record n. (the server has none)"
        );
        let e = wanted("web", "n.", &["host.example".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "deployment web: \"host.example\" is not an IP address, it cannot go in DNS record n."
        );
    }

    #[test]
    fn the_plan_creates_corrects_keeps_and_deletes_only_its_own() {
        let w = wanted("web", "n.", &["198.51.100.9".into()]).unwrap();
        // Nothing there: create the A, no AAAA.
        assert_eq!(
            plan("web", &[], &w, 300).unwrap(),
            vec![Step::Create {
                record_type: RecordType::A,
                records: vec!["198.51.100.9".into()]
            }]
        );
        // The same records and TTL: kept, nothing written.
        let same = rs(RecordType::A, &["198.51.100.9"], Some(300), OURS);
        assert_eq!(
            plan("web", std::slice::from_ref(&same), &w, 300).unwrap(),
            vec![Step::Keep(same)]
        );
        // Another address, or another TTL (the zone's is not the file's):
        // corrected.
        for drifted in [
            rs(RecordType::A, &["198.51.100.77"], Some(300), OURS),
            rs(RecordType::A, &["198.51.100.9"], Some(60), OURS),
            rs(RecordType::A, &["198.51.100.9"], None, OURS),
            rs(
                RecordType::A,
                &["198.51.100.9", "198.51.100.10"],
                Some(300),
                OURS,
            ),
        ] {
            assert_eq!(
                plan("web", std::slice::from_ref(&drifted), &w, 300).unwrap(),
                vec![Step::Update {
                    existing: drifted,
                    records: vec!["198.51.100.9".into()]
                }]
            );
        }
        // An own AAAA no longer wanted goes.
        let a = rs(RecordType::A, &["198.51.100.9"], Some(300), OURS);
        let aaaa = rs(RecordType::Aaaa, &["2001:db8::1"], Some(300), OURS);
        assert_eq!(
            plan("web", &[a.clone(), aaaa.clone()], &w, 300).unwrap(),
            vec![Step::Keep(a), Step::Delete(aaaa)]
        );
        // IPv6 compares as addresses, not as text.
        let w6 = wanted("web", "n.", &["2001:db8::1".into()]).unwrap();
        let long = rs(
            RecordType::Aaaa,
            &["2001:0db8:0:0:0:0:0:1"],
            Some(300),
            OURS,
        );
        assert_eq!(
            plan("web", std::slice::from_ref(&long), &w6, 300).unwrap(),
            vec![Step::Keep(long)]
        );
    }

    #[test]
    fn a_record_ingot_did_not_make_is_an_error_that_says_so() {
        let w = wanted("web", "n.", &["198.51.100.9".into()]).unwrap();
        let cases = [
            (
                rs(RecordType::A, &["192.0.2.1"], Some(3600), ""),
                "DNS record web.playground.test. A (192.0.2.1) was not made by ingot for deployment web (it has no description): ingot does not overwrite it; delete it, or choose another params.fqdn",
            ),
            (
                rs(RecordType::A, &["192.0.2.1"], None, "the old box"),
                "was not made by ingot for deployment web (its description: \"the old box\")",
            ),
            (
                rs(RecordType::Aaaa, &["2001:db8::1"], None, "ingot deployment other"),
                "DNS record web.playground.test. AAAA (2001:db8::1) was not made by ingot for deployment web (it belongs to deployment other)",
            ),
            (
                rs(RecordType::Cname, &["elsewhere.example."], None, ""),
                "DNS record web.playground.test. CNAME (elsewhere.example.)",
            ),
        ];
        for (foreign, want) in cases {
            let e = plan("web", &[foreign], &w, 300).unwrap_err();
            assert!(e.to_string().contains(want), "{e}\nwanted {want}");
            assert!(e.is_input());
        }
        // A TXT of the same name is not the deployment's business.
        let txt = rs(RecordType::Txt, &["\"v=spf1 -all\""], None, "");
        assert_eq!(plan("web", &[txt], &w, 300).unwrap().len(), 1);
    }

    #[test]
    fn preflight_messages() {
        let e = dns_service::<()>(
            "web",
            "playground.test",
            Err(CloudError::NoEndpoint {
                service_type: "dns".into(),
                interface: "public".into(),
                region: None,
                available: vec!["compute".into(), "image".into()],
            }),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "deployment web names DNS zone playground.test., but the cloud offers no DNS service (the catalog has no dns endpoint for interface public; it offers: compute, image): remove `dns:` from the deployment file, or deploy to a cloud with Designate"
        );
        assert!(e.is_input());
        let e = DnsError::NoZone {
            deployment: "web".into(),
            zone: "playground.tset.".into(),
            zones: vec!["playground.test.".into()],
            suggestion: crate::suggest::did_you_mean(
                "playground.tset.",
                &["playground.test.".into()],
            ),
        };
        assert_eq!(
            e.to_string(),
            "deployment web: dns.zone playground.tset.: no such zone in Designate for this project (zones: playground.test.); did you mean playground.test.?"
        );
        assert!(e.is_input());
    }

    #[test]
    fn the_resolver_is_judged_against_the_expected_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            judge(vec![ip("198.51.100.9")], &["198.51.100.9".into()]),
            Resolution::Matches {
                addresses: vec!["198.51.100.9".into()]
            }
        );
        assert!(matches!(
            judge(
                vec![ip("198.51.100.9"), ip("2001:db8::1")],
                &["198.51.100.9".into()]
            ),
            Resolution::Elsewhere { .. }
        ));
        assert!(matches!(
            judge(vec![ip("198.51.100.9")], &[]),
            Resolution::Elsewhere { .. }
        ));
        assert_eq!(
            Resolution::TimedOut { seconds: 3 }.to_string(),
            "does not resolve (no answer within 3 s)"
        );
    }

    #[test]
    fn the_resolver_answers_within_its_bound() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let start = Instant::now();
            // `.invalid` never resolves (RFC 6761), quickly or not: either
            // way within the bound.
            let r = resolve("ingot-test.invalid.", Duration::from_secs(2)).await;
            assert!(start.elapsed() < Duration::from_secs(3));
            assert!(
                matches!(
                    r,
                    Err(Resolution::DoesNotResolve { .. }) | Err(Resolution::TimedOut { .. })
                ),
                "{r:?}"
            );
            // A literal address needs no resolver.
            let r = resolve("127.0.0.1", Duration::from_secs(2)).await.unwrap();
            assert_eq!(r, vec![ip("127.0.0.1")]);
        });
        fn ip(s: &str) -> IpAddr {
            s.parse().unwrap()
        }
    }
}
