//! The security group of a deployment, `ingot-<deployment>`: exactly the
//! ingress rules its image's public ports need, nothing else.
//!
//! Written after a field journal in which security groups were edited port
//! by port in a web UI: four overlapping groups open to the world, and
//! Jitsi's media port entered as 10000/tcp where the bridge listens on
//! 10000/udp. Here the rules come from the ports the layers declare
//! (`manifest.json`), one group per deployment, and every sync makes the
//! group hold exactly those rules, removing what was added by hand.
//!
//! - [`wanted`] turns the manifest's ports and a [`Policy`] into [`Rule`]s
//!   (pure).
//! - [`sync`] finds or creates the group and converges its ingress rules;
//!   Neutron's egress rules are left as they are.
//! - [`delete`] removes the group (`ingot destroy`).
//!
//! ```
//! use ingot::deploy::secgroup::{wanted, Policy};
//! use ingot::manifest::PortRecord;
//! use ingot::model::{Exposure, Protocol};
//!
//! let media = PortRecord {
//!     port: 10000,
//!     protocol: Protocol::Udp,
//!     exposure: Exposure::Public,
//!     service: "jitsi-videobridge2".into(),
//!     layer: "jitsi".into(),
//! };
//! let policy = Policy { icmp: false, ssh_from: None };
//! let rules: Vec<String> = wanted(&[media], &policy)
//!     .unwrap()
//!     .iter()
//!     .map(|r| r.to_string())
//!     .collect();
//! assert_eq!(
//!     rules,
//!     ["ingress IPv4 udp 10000 from 0.0.0.0/0", "ingress IPv6 udp 10000 from ::/0"]
//! );
//! ```

use crate::cloud::network::{
    Direction, Ethertype, NetworkService, NewSecurityGroup, NewSecurityGroupRule, Protocol,
    SecurityGroup, SecurityGroupRule, Tagged,
};
use crate::cloud::CloudError;
use crate::manifest::PortRecord;
use crate::model::names::{DeploymentName, Rule as _};
use crate::model::{Exposure, Protocol as PortProtocol};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use thiserror::Error;

/// Every Neutron resource ingot manages carries this tag.
pub const INGOT_TAG: &str = "ingot";

/// The tag that says which deployment a resource belongs to.
pub fn deployment_tag(deployment: &str) -> String {
    format!("ingot-deployment:{deployment}")
}

/// The group's name.
pub fn group_name(deployment: &str) -> String {
    format!("ingot-{deployment}")
}

/// ICMP echo request: the type `ping` sends, for IPv4 and IPv6.
const ECHO_V4: u8 = 8;
const ECHO_V6: u8 = 128;
const SSH: u16 = 22;

/// What a deployment opens besides its public ports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Answer ping (ICMP and ICMPv6 echo requests) from anywhere.
    pub icmp: bool,
    /// Where SSH (22/tcp, when a layer declares it public) may come from:
    /// IPv4 or IPv6 CIDRs (a bare address means that one address). An IPv4
    /// CIDR opens SSH over IPv4 only, and so on. `None`: from anywhere,
    /// like any public port; an empty list: from nowhere.
    pub ssh_from: Option<Vec<String>>,
}

/// Where a rule lets traffic come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Remote {
    /// A CIDR, normalised (`0.0.0.0/0` and `::/0` for anywhere, which is
    /// also what a rule without a prefix means to Neutron).
    Prefix(String),
    /// The ports of another security group (rules made by hand; ingot
    /// writes none).
    Group(String),
    /// An address group (rules made by hand; ingot writes none).
    AddressGroup(String),
}

/// One security group rule as a value: two rules are equal when they let
/// the same traffic in, however Neutron spells them (`6` or `tcp`, no
/// prefix or `0.0.0.0/0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub direction: Direction,
    /// `None`: every protocol.
    pub protocol: Option<Protocol>,
    /// TCP, UDP (and other protocols with ports): the first and last port;
    /// `None`: every port.
    pub ports: Option<(u16, u16)>,
    /// ICMP and ICMPv6: the type and, if only one, the code; `None`: every
    /// type. Neutron keeps them in `port_range_min` and `port_range_max`.
    pub icmp: Option<(u8, Option<u8>)>,
    pub ethertype: Ethertype,
    pub remote: Remote,
}

impl Rule {
    /// Ingress to one port from a (normalised) CIDR.
    fn port(ethertype: Ethertype, protocol: Protocol, port: u16, cidr: &str) -> Rule {
        Rule {
            direction: Direction::Ingress,
            protocol: Some(protocol),
            ports: Some((port, port)),
            icmp: None,
            ethertype,
            remote: Remote::Prefix(cidr.to_string()),
        }
    }

    /// Echo requests (ping) from anywhere.
    fn echo(ethertype: Ethertype) -> Rule {
        let (protocol, kind) = match ethertype {
            Ethertype::Ipv4 => (Protocol::Icmp, ECHO_V4),
            Ethertype::Ipv6 => (Protocol::Ipv6Icmp, ECHO_V6),
        };
        Rule {
            direction: Direction::Ingress,
            protocol: Some(protocol),
            ports: None,
            icmp: Some((kind, None)),
            ethertype,
            remote: Remote::Prefix(anywhere(ethertype).into()),
        }
    }

    /// A rule as Neutron holds it, in the same normal form as [`wanted`]'s.
    pub fn from_neutron(r: &SecurityGroupRule) -> Rule {
        let protocol = r.protocol.as_ref().map(|p| normal_protocol(p, r.ethertype));
        let is_icmp = matches!(protocol, Some(Protocol::Icmp | Protocol::Ipv6Icmp));
        let (ports, icmp) = if is_icmp {
            let byte = |v: Option<u16>| v.and_then(|v| u8::try_from(v).ok());
            (
                None,
                byte(r.port_range_min).map(|t| (t, byte(r.port_range_max))),
            )
        } else {
            let ports = match (r.port_range_min, r.port_range_max) {
                (Some(a), Some(b)) => Some((a, b)),
                (Some(a), None) | (None, Some(a)) => Some((a, a)),
                (None, None) => None,
            };
            (ports, None)
        };
        let remote = if let Some(g) = &r.remote_group_id {
            Remote::Group(g.clone())
        } else if let Some(g) = &r.remote_address_group_id {
            Remote::AddressGroup(g.clone())
        } else {
            match &r.remote_ip_prefix {
                None => Remote::Prefix(anywhere(r.ethertype).into()),
                // Neutron keeps a prefix as it was typed, host bits and
                // all; the traffic it lets in is that of its network.
                Some(p) => Remote::Prefix(
                    parse_cidr(p)
                        .map(|c| c.network)
                        .or_else(|_| masked(p))
                        .unwrap_or_else(|_| p.clone()),
                ),
            }
        };
        Rule {
            direction: r.direction,
            protocol,
            ports,
            icmp,
            ethertype: r.ethertype,
            remote,
        }
    }

    /// What creating it in group `group_id` sends.
    fn to_new(&self, group_id: &str) -> NewSecurityGroupRule {
        let (min, max) = match (self.ports, self.icmp) {
            (Some((a, b)), _) => (Some(a), Some(b)),
            (None, Some((t, c))) => (Some(u16::from(t)), c.map(u16::from)),
            (None, None) => (None, None),
        };
        let remote_ip_prefix = match &self.remote {
            Remote::Prefix(p) => Some(p.clone()),
            // `wanted` makes prefixes only; a group or address group would
            // need fields the create request does not carry.
            Remote::Group(_) | Remote::AddressGroup(_) => None,
        };
        NewSecurityGroupRule {
            security_group_id: group_id.to_string(),
            direction: self.direction,
            ethertype: self.ethertype,
            protocol: self.protocol.clone(),
            port_range_min: min,
            port_range_max: max,
            remote_ip_prefix,
            description: None,
        }
    }
}

impl fmt::Display for Rule {
    /// `ingress IPv4 udp 10000 from 0.0.0.0/0`,
    /// `ingress IPv6 ipv6-icmp type 128 from ::/0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.direction, self.ethertype)?;
        match &self.protocol {
            None => write!(f, " any protocol")?,
            Some(p) => write!(f, " {p}")?,
        }
        match (self.ports, self.icmp) {
            (Some((a, b)), _) if a == b => write!(f, " {a}")?,
            (Some((a, b)), _) => write!(f, " {a}-{b}")?,
            (None, Some((t, None))) => write!(f, " type {t}")?,
            (None, Some((t, Some(c)))) => write!(f, " type {t} code {c}")?,
            (None, None) if self.protocol.is_some() => write!(f, " all ports")?,
            (None, None) => {}
        }
        match &self.remote {
            Remote::Prefix(p) => write!(f, " from {p}"),
            Remote::Group(g) => write!(f, " from security group {g}"),
            Remote::AddressGroup(g) => write!(f, " from address group {g}"),
        }
    }
}

/// What [`sync`] did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// Empty in a dry run that would create the group.
    pub group_id: String,
    pub created_group: bool,
    pub added: Vec<Rule>,
    /// Ingress rules no layer declares, hand-made ones included.
    pub removed: Vec<Rule>,
    /// Rules left as they were: the wanted ones already there and every
    /// egress rule.
    pub kept: usize,
}

impl Synced {
    /// Nothing was (or would be) changed.
    pub fn is_noop(&self) -> bool {
        !self.created_group && self.added.is_empty() && self.removed.is_empty()
    }
}

#[derive(Debug, Error)]
pub enum SecgroupError {
    #[error("{0}")]
    Deployment(String),
    #[error("ssh_from: {}", problems.join("; "))]
    SshFrom { problems: Vec<String> },
    #[error("port 0/{protocol} of service {service} (layer {layer}) cannot be opened: ports are 1 to 65535")]
    PortZero {
        protocol: &'static str,
        service: String,
        layer: String,
    },
    /// A rule [`wanted`] never makes: egress, or not from a CIDR of its
    /// ethertype.
    #[error(
        "only ingress rules from a CIDR of their ethertype are synced; `{rule}` was asked for"
    )]
    Unsupported { rule: Rule },
    #[error("security group {name}: {} groups could be it ({}); delete or rename the ones ingot should not manage", ids.len(), ids.join(", "))]
    Ambiguous { name: String, ids: Vec<String> },
    #[error("security group {name} ({id}) is still used by {}: delete those servers first", if ports.is_empty() { "a port".to_string() } else { ports.join(", ") })]
    InUse {
        name: String,
        id: String,
        /// `PORT (server SERVER)` for each port using it.
        ports: Vec<String>,
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

impl SecgroupError {
    /// Input the user must fix (exit code 2), as opposed to a cloud failure.
    pub fn is_input(&self) -> bool {
        match self {
            SecgroupError::Deployment(_)
            | SecgroupError::SshFrom { .. }
            | SecgroupError::PortZero { .. } => true,
            SecgroupError::Cloud { source, .. } => source.is_input(),
            _ => false,
        }
    }
}

fn cloud(what: impl fmt::Display) -> impl FnOnce(CloudError) -> SecgroupError {
    let what = what.to_string();
    move |source| SecgroupError::Cloud {
        what,
        source: Box::new(source),
    }
}

fn check_deployment(deployment: &str) -> Result<(), SecgroupError> {
    DeploymentName::check(deployment).map_err(SecgroupError::Deployment)
}

fn anywhere(e: Ethertype) -> &'static str {
    match e {
        Ethertype::Ipv4 => "0.0.0.0/0",
        Ethertype::Ipv6 => "::/0",
    }
}

/// Neutron takes a protocol by name or number and, for IPv6, `icmp` for
/// ICMPv6; its duplicate check treats them as one, and so must the diff,
/// or it would create a rule Neutron refuses as existing.
fn normal_protocol(p: &Protocol, e: Ethertype) -> Protocol {
    match (p.as_str(), e) {
        ("6", _) => Protocol::Tcp,
        ("17", _) => Protocol::Udp,
        ("1" | "icmp", Ethertype::Ipv6) | ("58", _) => Protocol::Ipv6Icmp,
        ("1", Ethertype::Ipv4) => Protocol::Icmp,
        _ => p.clone(),
    }
}

/// A checked CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub ethertype: Ethertype,
    /// `address/length`, the address as Rust (and Neutron) print it.
    pub network: String,
}

/// Parses `address/length` (or a bare address: one host), refusing host
/// bits: `203.0.113.5/24` is either a typo for `/32` or for
/// `203.0.113.0/24`, and guessing which would open SSH to the wrong set.
pub(crate) fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let (addr_text, len_text) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| {
        format!("`{s}` is not an IPv4 or IPv6 CIDR (expected e.g. 192.0.2.0/24 or 2001:db8::/32)")
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = match len_text {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max && !l.starts_with('+') => n,
            _ => {
                return Err(format!(
                    "`{s}`: the prefix length must be a number from 0 to {max}"
                ))
            }
        },
    };
    let network = mask(addr, len);
    if network != addr {
        return Err(format!(
            "`{s}` has host bits set: write {network}/{len} for the network, or {addr}/{max} for the one address"
        ));
    }
    Ok(Cidr {
        ethertype: if addr.is_ipv4() {
            Ethertype::Ipv4
        } else {
            Ethertype::Ipv6
        },
        network: format!("{addr}/{len}"),
    })
}

/// A CIDR with its host bits cleared (for prefixes Neutron already holds).
fn masked(s: &str) -> Result<String, String> {
    let (a, l) = s.split_once('/').ok_or_else(|| s.to_string())?;
    let addr: IpAddr = a.parse().map_err(|_| s.to_string())?;
    let len: u8 = l.parse().map_err(|_| s.to_string())?;
    Ok(format!("{}/{len}", mask(addr, len)))
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// The ingress rules a deployment needs: for each public port and
/// protocol, one rule for IPv4 and one for IPv6, from anywhere (SSH from
/// [`Policy::ssh_from`]); ping if [`Policy::icmp`]. Private and local
/// ports are never opened. Sorted, without duplicates.
pub fn wanted(ports: &[PortRecord], policy: &Policy) -> Result<Vec<Rule>, SecgroupError> {
    // Checked even when no layer opens SSH: a typo is one either way.
    let ssh_from = match &policy.ssh_from {
        None => None,
        Some(list) => {
            let (ok, bad): (Vec<_>, Vec<_>) =
                list.iter().map(|c| parse_cidr(c)).partition(Result::is_ok);
            if !bad.is_empty() {
                return Err(SecgroupError::SshFrom {
                    problems: bad.into_iter().filter_map(Result::err).collect(),
                });
            }
            Some(ok.into_iter().filter_map(Result::ok).collect::<Vec<_>>())
        }
    };
    let everywhere = [Ethertype::Ipv4, Ethertype::Ipv6].map(|e| Cidr {
        ethertype: e,
        network: anywhere(e).into(),
    });
    let mut rules = BTreeSet::new();
    for p in ports.iter().filter(|p| p.exposure == Exposure::Public) {
        if p.port == 0 {
            return Err(SecgroupError::PortZero {
                protocol: p.protocol.name(),
                service: p.service.clone(),
                layer: p.layer.clone(),
            });
        }
        let protocol = match p.protocol {
            PortProtocol::Tcp => Protocol::Tcp,
            PortProtocol::Udp => Protocol::Udp,
        };
        let sources = match (&ssh_from, p.port, p.protocol) {
            (Some(from), SSH, PortProtocol::Tcp) => from.as_slice(),
            _ => &everywhere[..],
        };
        for c in sources {
            rules.insert(Rule::port(
                c.ethertype,
                protocol.clone(),
                p.port,
                &c.network,
            ));
        }
    }
    if policy.icmp {
        // ICMPv6 neighbour discovery needs no rule: Neutron's firewall
        // drivers always let it through.
        rules.insert(Rule::echo(Ethertype::Ipv4));
        rules.insert(Rule::echo(Ethertype::Ipv6));
    }
    Ok(rules.into_iter().collect())
}

/// A rule `sync` can create as it is: ingress, from a normalised CIDR of
/// its own family. (A rule from a security group would be sent without a
/// prefix, which Neutron reads as "from anywhere".)
fn syncable(r: &Rule) -> bool {
    r.direction == Direction::Ingress
        && match &r.remote {
            Remote::Prefix(p) => {
                parse_cidr(p).is_ok_and(|c| c.ethertype == r.ethertype && c.network == *p)
            }
            Remote::Group(_) | Remote::AddressGroup(_) => false,
        }
}

/// The difference between a group's rules and the wanted ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Plan {
    add: Vec<Rule>,
    /// Rule ids with what they are.
    remove: Vec<(String, Rule)>,
    kept: usize,
}

/// Ingress rules are made to be exactly `wanted`; egress rules are kept
/// (a new group's default ones let the servers reach their package
/// mirrors and certificate authority).
fn plan(existing: &[SecurityGroupRule], wanted: &[Rule]) -> Plan {
    let wanted: BTreeSet<&Rule> = wanted.iter().collect();
    let mut seen = BTreeSet::new();
    let mut out = Plan::default();
    let (egress, mut ingress): (Vec<_>, Vec<_>) = existing
        .iter()
        .partition(|r| r.direction != Direction::Ingress);
    out.kept += egress.len();
    // Neutron keeps `198.51.100.9/24` beside `198.51.100.0/24` (its
    // duplicate check compares prefixes as typed): both let the same
    // network in, so one goes; the one spelled as ingot spells it stays.
    ingress.sort_by_key(|r| !is_canonical(r));
    for r in ingress {
        let rule = Rule::from_neutron(r);
        if wanted.contains(&rule) && seen.insert(rule.clone()) {
            out.kept += 1;
        } else {
            out.remove.push((r.id.clone(), as_stored(r)));
        }
    }
    out.add = wanted
        .into_iter()
        .filter(|w| !seen.contains(*w))
        .cloned()
        .collect();
    out.remove.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    out
}

/// The rule's prefix is the normal form of itself.
fn is_canonical(r: &SecurityGroupRule) -> bool {
    match (&r.remote_ip_prefix, Rule::from_neutron(r).remote) {
        (Some(p), Remote::Prefix(n)) => *p == n,
        _ => true,
    }
}

/// A rule to remove, with its prefix as Neutron holds it, so that a report
/// of what went never reads like a rule that stays.
fn as_stored(r: &SecurityGroupRule) -> Rule {
    let mut rule = Rule::from_neutron(r);
    if let (Some(p), Remote::Prefix(_)) = (&r.remote_ip_prefix, &rule.remote) {
        rule.remote = Remote::Prefix(p.clone());
    }
    rule
}

/// Finds the deployment's group: tagged by ingot for it, or named
/// `ingot-<deployment>` (a group whose tags were never set after a create
/// whose answer was lost). More than one candidate is an error.
async fn find_group<N: NetworkService>(
    neutron: &N,
    deployment: &str,
) -> Result<Option<SecurityGroup>, SecgroupError> {
    let name = group_name(deployment);
    let tags = format!("{INGOT_TAG},{}", deployment_tag(deployment));
    let tagged = neutron
        .security_groups(&[("tags", &tags)])
        .await
        .map_err(cloud(format_args!("looking for security group {name}")))?;
    let named = neutron
        .security_groups(&[("name", &name)])
        .await
        .map_err(cloud(format_args!("looking for security group {name}")))?;
    // By id: the tagged group usually has the name too.
    let mut found: BTreeMap<String, SecurityGroup> = BTreeMap::new();
    for g in tagged
        .into_iter()
        .chain(named.into_iter().filter(|g| g.name == name))
    {
        found.entry(g.id.clone()).or_insert(g);
    }
    if found.len() > 1 {
        return Err(SecgroupError::Ambiguous {
            name,
            ids: found.into_keys().collect(),
        });
    }
    Ok(found.into_values().next())
}

/// Adds ingot's tags the group lacks.
async fn tag<N: NetworkService>(
    neutron: &N,
    group: &SecurityGroup,
    deployment: &str,
) -> Result<(), SecgroupError> {
    for t in [INGOT_TAG.to_string(), deployment_tag(deployment)] {
        if !group.tags.contains(&t) {
            neutron
                .add_tag(Tagged::SecurityGroup, &group.id, &t)
                .await
                .map_err(cloud(format_args!(
                    "tagging security group {} ({})",
                    group.name, group.id
                )))?;
        }
    }
    Ok(())
}

async fn create_group<N: NetworkService>(
    neutron: &N,
    deployment: &str,
) -> Result<SecurityGroup, SecgroupError> {
    let name = group_name(deployment);
    let new = NewSecurityGroup {
        name: name.clone(),
        description: format!(
            "Managed by ingot for deployment {deployment}: every deploy rewrites its ingress rules; rules added by hand are removed"
        ),
    };
    match neutron.create_security_group(&new).await {
        Ok(g) => Ok(g),
        Err(e) => {
            // A create whose answer was lost may have happened: if the
            // group is there, use it rather than fail (and a later retry
            // would find it by name anyway).
            match find_group(neutron, deployment).await {
                Ok(Some(g)) => Ok(g),
                _ => Err(cloud(format_args!("creating security group {name}"))(e)),
            }
        }
    }
}

/// Makes the deployment's group exist (found by tag, else by name; created
/// and tagged if missing) and hold exactly the `wanted` ingress rules:
/// missing ones are created first, then undeclared ones deleted, so that a
/// rule being replaced (SSH from anywhere to SSH from an office) never
/// leaves a moment with neither. Egress rules are kept. `dry_run`: only
/// report what would change. Running it again changes nothing.
pub async fn sync<N: NetworkService>(
    neutron: &N,
    deployment: &str,
    wanted: &[Rule],
    dry_run: bool,
) -> Result<Synced, SecgroupError> {
    check_deployment(deployment)?;
    if let Some(rule) = wanted.iter().find(|r| !syncable(r)) {
        return Err(SecgroupError::Unsupported { rule: rule.clone() });
    }
    let (group, created_group) = match find_group(neutron, deployment).await? {
        Some(g) => (Some(g), false),
        None if dry_run => (None, true),
        None => (Some(create_group(neutron, deployment).await?), true),
    };
    let Some(group) = group else {
        // A dry run of a new group: it would get Neutron's default egress
        // rules and these.
        let plan = plan(&[], wanted);
        return Ok(Synced {
            group_id: String::new(),
            created_group,
            added: plan.add,
            removed: vec![],
            kept: 0,
        });
    };
    if !dry_run {
        tag(neutron, &group, deployment).await?;
    }
    let plan = plan(&group.rules, wanted);
    let mut synced = Synced {
        group_id: group.id.clone(),
        created_group,
        added: vec![],
        removed: vec![],
        kept: plan.kept,
    };
    if dry_run {
        synced.added = plan.add;
        synced.removed = plan.remove.into_iter().map(|(_, r)| r).collect();
        return Ok(synced);
    }
    for rule in plan.add {
        match neutron
            .create_security_group_rule(&rule.to_new(&group.id))
            .await
        {
            Ok(_) => synced.added.push(rule),
            // Made meanwhile by a concurrent sync (or a spelling of it this
            // diff did not know): it is there, which is what was wanted.
            // A 409 is also Neutron's answer to an exhausted quota, hence
            // the message test.
            Err(e) if e.status() == Some(409) && e.to_string().contains("already exists") => {
                synced.kept += 1
            }
            Err(e) => {
                return Err(cloud(format_args!(
                    "adding `{rule}` to security group {} ({})",
                    group.name, group.id
                ))(e))
            }
        }
    }
    for (id, rule) in plan.remove {
        neutron
            .delete_security_group_rule(&id)
            .await
            .map_err(cloud(format_args!(
                "removing `{rule}` ({id}) from security group {} ({})",
                group.name, group.id
            )))?;
        synced.removed.push(rule);
    }
    Ok(synced)
}

/// The single TCP ports these rules open to the whole IPv4 world: what a
/// runner anywhere should be able to reach (SSH limited to an office is
/// not probed, the runner is rarely in it).
pub fn world_tcp_ports(rules: &[Rule]) -> Vec<u16> {
    let mut ports: Vec<u16> = rules
        .iter()
        .filter(|r| {
            r.direction == Direction::Ingress
                && r.protocol == Some(Protocol::Tcp)
                && r.ethertype == Ethertype::Ipv4
                && r.remote == Remote::Prefix(anywhere(Ethertype::Ipv4).into())
        })
        .filter_map(|r| match r.ports {
            Some((a, b)) if a == b => Some(a),
            _ => None,
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// [`world_tcp_ports`] of the deployment's group as Neutron holds it (a
/// fast-path rollback, which renders nothing, probes what the group opens).
pub async fn open_tcp_ports<N: NetworkService>(
    neutron: &N,
    deployment: &str,
) -> Result<Vec<u16>, SecgroupError> {
    check_deployment(deployment)?;
    Ok(match find_group(neutron, deployment).await? {
        Some(g) => world_tcp_ports(&g.rules.iter().map(Rule::from_neutron).collect::<Vec<_>>()),
        None => vec![],
    })
}

/// Deletes the deployment's group (`ingot destroy`); its id, or `None` if
/// there was none. A group that a port still uses is an error naming the
/// ports and their servers.
pub async fn delete<N: NetworkService>(
    neutron: &N,
    deployment: &str,
) -> Result<Option<String>, SecgroupError> {
    check_deployment(deployment)?;
    let Some(group) = find_group(neutron, deployment).await? else {
        return Ok(None);
    };
    match neutron.delete_security_group(&group.id).await {
        Ok(_) => Ok(Some(group.id)),
        Err(e) if e.status() == Some(409) => {
            // Which ports, so that the message says what to delete; if the
            // listing fails the message still says why.
            let ports = neutron
                .ports(&[("security_groups", &group.id)])
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    if p.device_id.is_empty() {
                        format!("port {}", p.id)
                    } else {
                        format!("port {} (server {})", p.id, p.device_id)
                    }
                })
                .collect();
            Err(SecgroupError::InUse {
                name: group.name,
                id: group.id,
                ports,
            })
        }
        Err(e) => Err(cloud(format_args!(
            "deleting security group {} ({})",
            group.name, group.id
        ))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::fake::FakeNeutron;

    fn port(port: u16, protocol: PortProtocol, exposure: Exposure, service: &str) -> PortRecord {
        PortRecord {
            port,
            protocol,
            exposure,
            service: service.into(),
            layer: "jitsi".into(),
        }
    }

    /// The ports of the jitsi-meet image: web, media, the bridge's local
    /// REST port, SSH.
    fn jitsi() -> Vec<PortRecord> {
        use Exposure::*;
        use PortProtocol::*;
        vec![
            port(443, Tcp, Public, "nginx"),
            port(80, Tcp, Public, "nginx"),
            port(10000, Udp, Public, "jitsi-videobridge2"),
            port(9090, Tcp, Local, "jitsi-videobridge2"),
            port(5222, Tcp, Private, "prosody"),
            port(22, Tcp, Public, "ssh"),
        ]
    }

    fn texts(rules: &[Rule]) -> Vec<String> {
        rules.iter().map(Rule::to_string).collect()
    }

    #[test]
    fn jitsi_opens_its_public_ports_for_both_families_and_nothing_else() {
        let rules = wanted(&jitsi(), &Policy::default()).unwrap();
        assert_eq!(
            texts(&rules),
            [
                "ingress IPv4 tcp 22 from 0.0.0.0/0",
                "ingress IPv6 tcp 22 from ::/0",
                "ingress IPv4 tcp 80 from 0.0.0.0/0",
                "ingress IPv6 tcp 80 from ::/0",
                "ingress IPv4 tcp 443 from 0.0.0.0/0",
                "ingress IPv6 tcp 443 from ::/0",
                "ingress IPv4 udp 10000 from 0.0.0.0/0",
                "ingress IPv6 udp 10000 from ::/0",
            ]
        );
    }

    #[test]
    fn the_world_tcp_ports_are_the_ones_probed() {
        let rules = wanted(&jitsi(), &Policy::default()).unwrap();
        assert_eq!(world_tcp_ports(&rules), [22, 80, 443]);
        // SSH from an office only: the runner is rarely in it.
        let office = Policy {
            icmp: true,
            ssh_from: Some(vec!["198.51.100.0/24".into()]),
        };
        assert_eq!(
            world_tcp_ports(&wanted(&jitsi(), &office).unwrap()),
            [80, 443]
        );
    }

    /// The journal's mistake: 10000 entered as TCP. The media port is
    /// opened as the layer declares it, UDP, and never as TCP.
    #[test]
    fn regression_media_port_10000_is_udp_not_tcp() {
        let rules = wanted(&jitsi(), &Policy::default()).unwrap();
        let media: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.ports == Some((10000, 10000)))
            .collect();
        assert_eq!(media.len(), 2);
        assert!(media.iter().all(|r| r.protocol == Some(Protocol::Udp)));
    }

    #[test]
    fn ssh_from_limits_port_22_only_and_by_family() {
        let policy = Policy {
            icmp: false,
            ssh_from: Some(vec![
                "198.51.100.0/24".into(),
                "2001:DB8:0::/48".into(),
                "203.0.113.7".into(),
            ]),
        };
        let rules = wanted(&jitsi(), &policy).unwrap();
        let ssh: Vec<String> = rules
            .iter()
            .filter(|r| r.ports == Some((22, 22)))
            .map(Rule::to_string)
            .collect();
        assert_eq!(
            ssh,
            [
                "ingress IPv4 tcp 22 from 198.51.100.0/24",
                "ingress IPv4 tcp 22 from 203.0.113.7/32",
                "ingress IPv6 tcp 22 from 2001:db8::/48",
            ]
        );
        // The other ports stay open to the world.
        assert_eq!(rules.len(), 3 + 6);
        // No SSH at all from an empty list.
        let closed = Policy {
            icmp: false,
            ssh_from: Some(vec![]),
        };
        let rules = wanted(&jitsi(), &closed).unwrap();
        assert!(rules.iter().all(|r| r.ports != Some((22, 22))));
        // ssh_from opens nothing by itself: SSH must be a public port.
        let only_web = [port(443, PortProtocol::Tcp, Exposure::Public, "nginx")];
        assert_eq!(wanted(&only_web, &policy).unwrap().len(), 2);
        // 22/udp is not SSH.
        let udp22 = [port(22, PortProtocol::Udp, Exposure::Public, "odd")];
        assert_eq!(
            texts(&wanted(&udp22, &policy).unwrap()),
            [
                "ingress IPv4 udp 22 from 0.0.0.0/0",
                "ingress IPv6 udp 22 from ::/0"
            ]
        );
    }

    #[test]
    fn icmp_is_echo_for_each_family() {
        let on = Policy {
            icmp: true,
            ssh_from: None,
        };
        let rules = wanted(&[], &on).unwrap();
        assert_eq!(
            texts(&rules),
            [
                "ingress IPv4 icmp type 8 from 0.0.0.0/0",
                "ingress IPv6 ipv6-icmp type 128 from ::/0",
            ]
        );
        assert!(wanted(&[], &Policy::default()).unwrap().is_empty());
    }

    #[test]
    fn duplicates_become_one_rule_and_private_and_local_ports_none() {
        use Exposure::*;
        use PortProtocol::*;
        let ports = [
            port(443, Tcp, Public, "nginx"),
            port(443, Tcp, Public, "other"),
            port(443, Udp, Public, "quic"),
            port(9100, Tcp, Private, "node-exporter"),
            port(9090, Tcp, Local, "prometheus"),
        ];
        assert_eq!(
            texts(&wanted(&ports, &Policy::default()).unwrap()),
            [
                "ingress IPv4 tcp 443 from 0.0.0.0/0",
                "ingress IPv6 tcp 443 from ::/0",
                "ingress IPv4 udp 443 from 0.0.0.0/0",
                "ingress IPv6 udp 443 from ::/0",
            ]
        );
        let zero = [port(0, Tcp, Public, "nginx")];
        assert_eq!(
            wanted(&zero, &Policy::default()).unwrap_err().to_string(),
            "port 0/tcp of service nginx (layer jitsi) cannot be opened: ports are 1 to 65535"
        );
    }

    #[test]
    fn cidrs_are_checked_all_at_once() {
        let policy = Policy {
            icmp: false,
            ssh_from: Some(
                [
                    "10.0.0.0/8",
                    "10.0.0.1/33",
                    "203.0.113.5/24",
                    "office",
                    "2001:db8::1/32",
                    " 10.0.0.0/8",
                    "10.0.0.0/+8",
                ]
                .map(String::from)
                .to_vec(),
            ),
        };
        let e = wanted(&[], &policy).unwrap_err();
        assert!(e.is_input());
        assert_eq!(
            e.to_string(),
            "ssh_from: `10.0.0.1/33`: the prefix length must be a number from 0 to 32; \
             `203.0.113.5/24` has host bits set: write 203.0.113.0/24 for the network, or 203.0.113.5/32 for the one address; \
             `office` is not an IPv4 or IPv6 CIDR (expected e.g. 192.0.2.0/24 or 2001:db8::/32); \
             `2001:db8::1/32` has host bits set: write 2001:db8::/32 for the network, or 2001:db8::1/128 for the one address; \
             ` 10.0.0.0/8` is not an IPv4 or IPv6 CIDR (expected e.g. 192.0.2.0/24 or 2001:db8::/32); \
             `10.0.0.0/+8`: the prefix length must be a number from 0 to 32"
        );
        let ok = |s: &str| parse_cidr(s).unwrap();
        assert_eq!(ok("0.0.0.0/0").network, "0.0.0.0/0");
        assert_eq!(ok("::/0").ethertype, Ethertype::Ipv6);
        assert_eq!(ok("2001:0DB8::/32").network, "2001:db8::/32");
        assert_eq!(ok("192.0.2.1").network, "192.0.2.1/32");
        assert_eq!(ok("2001:db8::1").network, "2001:db8::1/128");
        assert_eq!(ok("::ffff:192.0.2.0/120").ethertype, Ethertype::Ipv6);
        assert!(parse_cidr("fe80::1%eth0").is_err());
    }

    fn existing(id: &str, v: serde_json::Value) -> SecurityGroupRule {
        let mut base = serde_json::json!({"id": id, "security_group_id": "sg",
            "direction": "ingress", "ethertype": "IPv4"});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn the_diff_adds_missing_removes_undeclared_and_keeps_egress() {
        let want = wanted(&jitsi(), &Policy::default()).unwrap();
        let have = vec![
            existing("e4", serde_json::json!({"direction": "egress"})),
            existing(
                "e6",
                serde_json::json!({"direction": "egress", "ethertype": "IPv6"}),
            ),
            // 443 by hand, without a prefix: Neutron's "anywhere".
            existing(
                "h443",
                serde_json::json!({"protocol": "tcp", "port_range_min": 443, "port_range_max": 443}),
            ),
            // By number: tcp.
            existing(
                "h80",
                serde_json::json!({"protocol": "6", "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "0.0.0.0/0"}),
            ),
            // The journal's 10000/tcp.
            existing(
                "t10000",
                serde_json::json!({"protocol": "tcp", "port_range_min": 10000, "port_range_max": 10000, "remote_ip_prefix": "0.0.0.0/0"}),
            ),
            // Grafana, open to the world by hand.
            existing(
                "g3000",
                serde_json::json!({"protocol": "tcp", "port_range_min": 3000, "port_range_max": 3000, "remote_ip_prefix": "0.0.0.0/0"}),
            ),
            // The default group's "from members of the group".
            existing("rg", serde_json::json!({"remote_group_id": "sg"})),
        ];
        let p = plan(&have, &want);
        assert_eq!(p.kept, 4);
        assert_eq!(
            texts(&p.add),
            [
                "ingress IPv4 tcp 22 from 0.0.0.0/0",
                "ingress IPv6 tcp 22 from ::/0",
                "ingress IPv6 tcp 80 from ::/0",
                "ingress IPv6 tcp 443 from ::/0",
                "ingress IPv4 udp 10000 from 0.0.0.0/0",
                "ingress IPv6 udp 10000 from ::/0",
            ]
        );
        let removed: Vec<(String, String)> = p
            .remove
            .iter()
            .map(|(id, r)| (id.clone(), r.to_string()))
            .collect();
        assert_eq!(
            removed,
            [
                (
                    "rg".to_string(),
                    "ingress IPv4 any protocol from security group sg".to_string()
                ),
                (
                    "g3000".into(),
                    "ingress IPv4 tcp 3000 from 0.0.0.0/0".into()
                ),
                (
                    "t10000".into(),
                    "ingress IPv4 tcp 10000 from 0.0.0.0/0".into()
                ),
            ]
        );
        // Once applied, the diff is empty.
        let mut after: Vec<SecurityGroupRule> = have
            .into_iter()
            .filter(|r| !p.remove.iter().any(|(id, _)| *id == r.id))
            .collect();
        for (i, r) in p.add.iter().enumerate() {
            let n = r.to_new("sg");
            after.push(existing(
                &format!("n{i}"),
                serde_json::json!({
                "ethertype": n.ethertype, "protocol": n.protocol,
                "port_range_min": n.port_range_min, "port_range_max": n.port_range_max,
                "remote_ip_prefix": n.remote_ip_prefix}),
            ));
        }
        assert_eq!(
            plan(&after, &want),
            Plan {
                add: vec![],
                remove: vec![],
                kept: 2 + 8
            }
        );
    }

    #[test]
    fn of_two_spellings_neutron_keeps_side_by_side_ingots_stays() {
        let policy = Policy {
            icmp: false,
            ssh_from: Some(vec!["198.51.100.0/24".into()]),
        };
        let ssh = [port(22, PortProtocol::Tcp, Exposure::Public, "ssh")];
        let want = wanted(&ssh, &policy).unwrap();
        let rule = |id: &str, prefix: &str| {
            existing(
                id,
                serde_json::json!({"protocol": "tcp", "port_range_min": 22,
                    "port_range_max": 22, "remote_ip_prefix": prefix}),
            )
        };
        let have = [
            rule("typed", "198.51.100.9/24"),
            rule("ours", "198.51.100.0/24"),
        ];
        let p = plan(&have, &want);
        assert_eq!(p.kept, 1);
        assert!(p.add.is_empty());
        assert_eq!(p.remove.len(), 1);
        assert_eq!(p.remove[0].0, "typed");
        assert_eq!(
            p.remove[0].1.to_string(),
            "ingress IPv4 tcp 22 from 198.51.100.9/24"
        );
    }

    #[test]
    fn neutron_spellings_read_as_the_same_rule() {
        let r = |v| Rule::from_neutron(&existing("x", v));
        let echo6 = Rule::echo(Ethertype::Ipv6);
        assert_eq!(
            r(
                serde_json::json!({"ethertype": "IPv6", "protocol": "icmpv6", "port_range_min": 128, "remote_ip_prefix": "::/0"})
            ),
            echo6
        );
        assert_eq!(
            r(serde_json::json!({"ethertype": "IPv6", "protocol": "58", "port_range_min": 128})),
            echo6
        );
        assert_eq!(
            r(serde_json::json!({"ethertype": "IPv6", "protocol": "icmp", "port_range_min": 128})),
            echo6
        );
        assert_eq!(
            r(serde_json::json!({"protocol": "1", "port_range_min": 8})),
            Rule::echo(Ethertype::Ipv4)
        );
        // Host bits as someone typed them: the network they let in.
        assert_eq!(
            r(serde_json::json!({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "198.51.100.9/24"})).remote,
            Remote::Prefix("198.51.100.0/24".into())
        );
        // An address group is not "anywhere".
        assert_eq!(
            r(serde_json::json!({"protocol": "tcp", "remote_address_group_id": "ag"})).to_string(),
            "ingress IPv4 tcp all ports from address group ag"
        );
        assert_eq!(
            r(serde_json::json!({"protocol": "icmp", "port_range_min": 3, "port_range_max": 4}))
                .to_string(),
            "ingress IPv4 icmp type 3 code 4 from 0.0.0.0/0"
        );
        assert_eq!(
            r(serde_json::json!({"protocol": "udp", "port_range_min": 16384, "port_range_max": 32767})).to_string(),
            "ingress IPv4 udp 16384-32767 from 0.0.0.0/0"
        );
    }

    #[test]
    fn icmp_rules_send_type_and_code_as_neutron_ports() {
        let n = Rule::echo(Ethertype::Ipv6).to_new("sg");
        assert_eq!(
            (
                n.protocol,
                n.port_range_min,
                n.port_range_max,
                n.remote_ip_prefix.as_deref()
            ),
            (Some(Protocol::Ipv6Icmp), Some(128), None, Some("::/0"))
        );
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn sync_creates_tags_converges_and_then_does_nothing() {
        let n = FakeNeutron::default();
        let want = wanted(&jitsi(), &Policy::default()).unwrap();
        rt().block_on(async {
            let dry = sync(&n, "visio", &want, true).await.unwrap();
            assert!(dry.created_group && dry.group_id.is_empty() && dry.added.len() == 8);
            assert_eq!(n.groups().len(), 0, "a dry run creates nothing");
            let s = sync(&n, "visio", &want, false).await.unwrap();
            assert!(s.created_group);
            assert_eq!(s.added, want);
            assert_eq!((s.removed.len(), s.kept), (0, 2));
            let g = &n.groups()[0];
            assert_eq!(g.name, "ingot-visio");
            assert_eq!(g.tags, ["ingot", "ingot-deployment:visio"]);
            let again = sync(&n, "visio", &want, false).await.unwrap();
            assert!(again.is_noop(), "{again:?}");
            assert_eq!(again.kept, 10);
            assert_eq!(
                n.calls_that_write(),
                1 + 2 + 8,
                "the second sync wrote nothing"
            );
        });
    }

    #[test]
    fn a_lost_create_answer_never_makes_two_groups() {
        let n = FakeNeutron::default();
        n.lose_next_create();
        rt().block_on(async {
            let s = sync(&n, "visio", &[], false).await.unwrap();
            assert!(s.created_group);
            assert_eq!(n.groups().len(), 1);
            assert_eq!(n.groups()[0].tags, ["ingot", "ingot-deployment:visio"]);
        });
        // And if the run stopped before tagging, the next finds it by name.
        let n = FakeNeutron::default();
        n.lose_next_create();
        n.fail_tags(true);
        rt().block_on(async {
            assert!(sync(&n, "visio", &[], false).await.is_err());
            n.fail_tags(false);
            let s = sync(&n, "visio", &[], false).await.unwrap();
            assert!(!s.created_group);
            assert_eq!(n.groups().len(), 1);
            assert_eq!(n.groups()[0].tags, ["ingot", "ingot-deployment:visio"]);
        });
    }

    #[test]
    fn two_groups_by_the_name_is_an_error_naming_both() {
        let n = FakeNeutron::default();
        rt().block_on(async {
            for _ in 0..2 {
                n.create_security_group(&NewSecurityGroup {
                    name: "ingot-visio".into(),
                    description: "by hand".into(),
                })
                .await
                .unwrap();
            }
            let ids: Vec<String> = n.groups().iter().map(|g| g.id.clone()).collect();
            let e = sync(&n, "visio", &[], false).await.unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "security group ingot-visio: 2 groups could be it ({}, {}); delete or rename the ones ingot should not manage",
                    ids[0], ids[1]
                )
            );
            assert!(!e.is_input());
            let e = delete(&n, "visio").await.unwrap_err();
            assert!(matches!(e, SecgroupError::Ambiguous { .. }));
        });
    }

    #[test]
    fn messages() {
        assert_eq!(
            check_deployment("Visio").unwrap_err().to_string(),
            "deployment name \"Visio\" is refused: it names servers, a security group, tags and DNS records; use 1 to 40 lower-case letters, digits or `-`, starting with a letter and not ending with `-`"
        );
        let e = SecgroupError::InUse {
            name: "ingot-visio".into(),
            id: "sg1".into(),
            ports: vec!["port p1 (server s1)".into()],
        };
        assert_eq!(
            e.to_string(),
            "security group ingot-visio (sg1) is still used by port p1 (server s1): delete those servers first"
        );
        let n = FakeNeutron::default();
        let egress = Rule {
            direction: Direction::Egress,
            ..Rule::echo(Ethertype::Ipv4)
        };
        let v6_from_v4 = Rule {
            ethertype: Ethertype::Ipv6,
            ..Rule::port(Ethertype::Ipv4, Protocol::Tcp, 22, "0.0.0.0/0")
        };
        let from_group = Rule {
            remote: Remote::Group("sg".into()),
            ..Rule::echo(Ethertype::Ipv4)
        };
        let e = rt()
            .block_on(sync(
                &n,
                "visio",
                &[Rule::echo(Ethertype::Ipv4), egress],
                false,
            ))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "only ingress rules from a CIDR of their ethertype are synced; `egress IPv4 icmp type 8 from 0.0.0.0/0` was asked for"
        );
        for bad in [v6_from_v4, from_group] {
            assert!(rt().block_on(sync(&n, "visio", &[bad], false)).is_err());
        }
        assert!(n.groups().is_empty(), "refused before anything was made");
        let e = SecgroupError::Cloud {
            what: "creating security group ingot-visio".into(),
            source: Box::new(CloudError::Http {
                service: "neutron",
                method: "POST".into(),
                url: "http://n/v2.0/security-groups".into(),
                status: 409,
                message: "Quota exceeded for resources: ['security_group'].".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "creating security group ingot-visio: neutron: POST http://n/v2.0/security-groups failed with HTTP 409: Quota exceeded for resources: ['security_group']."
        );
    }

    #[test]
    fn delete_is_none_without_a_group_and_names_the_ports_of_one_in_use() {
        let n = FakeNeutron::default();
        rt().block_on(async {
            assert_eq!(delete(&n, "visio").await.unwrap(), None);
            let s = sync(&n, "visio", &[], false).await.unwrap();
            n.add_port("p1", "net", "s1", &["10.0.0.5"], &[&s.group_id]);
            let e = delete(&n, "visio").await.unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("security group ingot-visio ({}) is still used by port p1 (server s1): delete those servers first", s.group_id)
            );
            n.remove_port("p1");
            assert_eq!(delete(&n, "visio").await.unwrap(), Some(s.group_id));
            assert!(n.groups().is_empty());
        });
    }
}
