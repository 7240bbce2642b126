//! The network service (Neutron v2.0): networks, ports, security groups
//! and their rules, floating IPs, and resource tags. One trait, one HTTP
//! implementation, at the catalog's `network` endpoint.
//!
//! Neutron creates are POSTs and are not retried: a create whose answer
//! was lost may have happened. Each create method says how its caller
//! finds such a resource again.

use super::compute::Quota;
use super::enums::string_enum;
use super::error::Invalid;
use super::keystone::error_chain;
use super::request::{check_tag, encode, marker_pages, with_query};
use super::{CloudError, Session};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// `ACTIVE`, `DOWN`, `BUILD` or `ERROR`.
    #[serde(default)]
    pub status: String,
    /// Floating IPs are allocated from external networks.
    #[serde(rename = "router:external", default)]
    pub external: bool,
    #[serde(default)]
    pub shared: bool,
    /// Subnet ids.
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

string_enum! {
    /// Which traffic a rule is about.
    pub enum Direction("rule direction") {
        Ingress = "ingress",
        Egress = "egress",
    }
}

string_enum! {
    pub enum Ethertype("ethertype") {
        Ipv4 = "IPv4",
        Ipv6 = "IPv6",
    }
}

/// A rule's IP protocol. The ones ingot writes have names; a rule made by
/// someone else may name any of the others Neutron knows (`gre`, `esp`,
/// …) or give a number, which is kept as [`Protocol::Other`] so that
/// reading a group never fails on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    /// ICMP for IPv6; Neutron stores `icmpv6` as `ipv6-icmp`.
    Ipv6Icmp,
    Other(String),
}

impl Protocol {
    pub fn as_str(&self) -> &str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Ipv6Icmp => "ipv6-icmp",
            Protocol::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "ipv6-icmp" | "icmpv6" => Protocol::Ipv6Icmp,
            other => Protocol::Other(other.to_string()),
        })
    }
}

impl Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse()
            .unwrap_or_else(|e: std::convert::Infallible| match e {}))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SecurityGroupRule {
    pub id: String,
    pub security_group_id: String,
    pub direction: Direction,
    pub ethertype: Ethertype,
    /// `None`: any protocol.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Ports for TCP and UDP; ICMP type (min) and code (max) for ICMP.
    #[serde(default)]
    pub port_range_min: Option<u16>,
    #[serde(default)]
    pub port_range_max: Option<u16>,
    /// `None` with no remote group either: from anywhere.
    #[serde(default)]
    pub remote_ip_prefix: Option<String>,
    #[serde(default)]
    pub remote_group_id: Option<String>,
    /// A rule from an address group (`security-groups-remote-address-group`)
    /// has neither a prefix nor a remote group; without this it would read
    /// as a rule from anywhere.
    #[serde(default)]
    pub remote_address_group_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// A new group has Neutron's two default egress rules (IPv4 and IPv6,
    /// any protocol, anywhere).
    #[serde(rename = "security_group_rules", default)]
    pub rules: Vec<SecurityGroupRule>,
    #[serde(default)]
    pub project_id: Option<String>,
}

/// What `create_security_group` sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewSecurityGroup {
    pub name: String,
    pub description: String,
}

/// What `create_security_group_rule` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecurityGroupRule {
    pub security_group_id: String,
    pub direction: Direction,
    pub ethertype: Ethertype,
    /// `None`: any protocol (then no ports).
    pub protocol: Option<Protocol>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    /// A CIDR of the rule's ethertype (`0.0.0.0/0`, `::/0`,
    /// `192.0.2.0/24`); `None`: anywhere.
    pub remote_ip_prefix: Option<String>,
    pub description: Option<String>,
}

impl NewSecurityGroupRule {
    /// An ingress rule for one port (or a range) from a prefix.
    pub fn ingress(
        security_group_id: &str,
        ethertype: Ethertype,
        protocol: Protocol,
        ports: (u16, u16),
        remote_ip_prefix: Option<&str>,
    ) -> Self {
        NewSecurityGroupRule {
            security_group_id: security_group_id.into(),
            direction: Direction::Ingress,
            ethertype,
            protocol: Some(protocol),
            port_range_min: Some(ports.0),
            port_range_max: Some(ports.1),
            remote_ip_prefix: remote_ip_prefix.map(str::to_string),
            description: None,
        }
    }

    fn body(&self) -> Value {
        let mut o = Map::new();
        o.insert("security_group_id".into(), json!(self.security_group_id));
        o.insert("direction".into(), json!(self.direction));
        o.insert("ethertype".into(), json!(self.ethertype));
        if let Some(p) = &self.protocol {
            o.insert("protocol".into(), json!(p));
        }
        if let Some(p) = self.port_range_min {
            o.insert("port_range_min".into(), json!(p));
        }
        if let Some(p) = self.port_range_max {
            o.insert("port_range_max".into(), json!(p));
        }
        if let Some(r) = &self.remote_ip_prefix {
            o.insert("remote_ip_prefix".into(), json!(r));
        }
        if let Some(d) = &self.description {
            o.insert("description".into(), json!(d));
        }
        json!({ "security_group_rule": o })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Port {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub network_id: String,
    /// The server (or router, …) using it; empty when none.
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub device_owner: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub mac_address: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    /// Security group ids.
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    pub floating_network_id: String,
    /// The port it is associated with, if any.
    #[serde(default)]
    pub port_id: Option<String>,
    #[serde(default)]
    pub fixed_ip_address: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What `create_floating_ip` sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewFloatingIp {
    /// The external network to allocate from.
    pub network_id: String,
    /// Floating IPs have no name; a description is what finds one again
    /// after a create whose answer was lost (it is set in the same
    /// request, unlike tags).
    pub description: Option<String>,
    /// Associated at once when given.
    pub port_id: Option<String>,
}

string_enum! {
    /// The kinds of Neutron resources ingot tags, by their URL segment.
    pub enum Tagged("taggable resource") {
        Network = "networks",
        Subnet = "subnets",
        Port = "ports",
        SecurityGroup = "security-groups",
        FloatingIp = "floatingips",
        Router = "routers",
    }
}

/// Neutron refuses tags longer than this.
pub const MAX_TAG: usize = 255;

// `async fn` in a public trait hides the futures' `Send`-ness; ingot drives
// these futures on one current-thread runtime, so that costs nothing.
#[allow(async_fn_in_trait)]
pub trait NetworkService {
    /// Networks matching the filters (`name=…`, `router:external=true`,
    /// `tags=a,b` for all of them, `tags-any=a,b` for any), all pages.
    async fn networks(&self, filters: &[(&str, &str)]) -> Result<Vec<Network>, CloudError>;
    /// Ports matching the filters (`device_id=SERVER`, `network_id=…`).
    async fn ports(&self, filters: &[(&str, &str)]) -> Result<Vec<Port>, CloudError>;

    /// Security groups matching the filters (`name=…`, `tags=…`), each
    /// with its rules.
    async fn security_groups(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<SecurityGroup>, CloudError>;
    /// Creates a group (with Neutron's default egress rules). Tags cannot
    /// be set in the same request: tag it next, and after a lost answer
    /// find it by its name.
    async fn create_security_group(
        &self,
        group: &NewSecurityGroup,
    ) -> Result<SecurityGroup, CloudError>;
    /// `false` if it was already gone. A group still used by a port is a
    /// 409 error.
    async fn delete_security_group(&self, id: &str) -> Result<bool, CloudError>;
    /// Rules matching the filters (`security_group_id=…`).
    async fn security_group_rules(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<SecurityGroupRule>, CloudError>;
    /// Creates a rule. The same rule twice is a 409 error ("Security group
    /// rule already exists"), which is also what a retry after a lost
    /// answer meets.
    async fn create_security_group_rule(
        &self,
        rule: &NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule, CloudError>;
    /// `false` if it was already gone.
    async fn delete_security_group_rule(&self, id: &str) -> Result<bool, CloudError>;

    /// Floating IPs matching the filters (`floating_network_id=…`,
    /// `port_id=…`, `tags=…`, `description=…`).
    async fn floating_ips(&self, filters: &[(&str, &str)]) -> Result<Vec<FloatingIp>, CloudError>;
    /// Allocates a floating IP on an external network. After a lost
    /// answer, find it by its description.
    async fn create_floating_ip(&self, ip: &NewFloatingIp) -> Result<FloatingIp, CloudError>;
    /// Points the floating IP at a port (moving it from any other).
    async fn associate_floating_ip(
        &self,
        id: &str,
        port_id: &str,
    ) -> Result<FloatingIp, CloudError>;
    async fn disassociate_floating_ip(&self, id: &str) -> Result<FloatingIp, CloudError>;
    /// Releases it; `false` if it was already gone.
    async fn delete_floating_ip(&self, id: &str) -> Result<bool, CloudError>;

    /// The project's quotas for what a deployment makes, with what is in
    /// use; `None` where the cloud does not say (no `quota_details`
    /// extension, or a token without a project).
    async fn quotas(&self) -> Result<Option<NetworkQuotas>, CloudError>;

    async fn add_tag(&self, resource: Tagged, id: &str, tag: &str) -> Result<(), CloudError>;
    /// A tag the resource does not have is no error.
    async fn remove_tag(&self, resource: Tagged, id: &str, tag: &str) -> Result<(), CloudError>;
}

/// Neutron's quotas a deployment draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkQuotas {
    pub floating_ips: Quota,
    pub security_groups: Quota,
    pub security_group_rules: Quota,
}

/// One entry of `GET /v2.0/quotas/{project}/details`.
#[derive(Deserialize)]
struct QuotaDetail {
    limit: i64,
    used: i64,
    #[serde(default)]
    reserved: i64,
}

impl QuotaDetail {
    /// What is reserved is as good as used: another request holds it.
    fn quota(&self) -> Quota {
        Quota::new(self.limit, self.used.saturating_add(self.reserved.max(0)))
    }
}

pub struct Neutron<'a> {
    session: &'a Session,
    /// `.../v2.0`
    base: String,
    /// Items per page of the listings.
    page: usize,
}

const SERVICE: &str = "neutron";
const PAGE: usize = 500;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

impl<'a> Neutron<'a> {
    /// Neutron at `url`, with or without its `/v2.0`.
    pub fn new(session: &'a Session, url: &str) -> Self {
        let url = url.trim_end_matches('/');
        let root = url.strip_suffix("/v2.0").unwrap_or(url);
        Neutron {
            session,
            base: format!("{root}/v2.0"),
            page: PAGE,
        }
    }

    /// Neutron as the session's catalog (or override) names it.
    pub async fn from_session(session: &'a Session) -> Result<Self, CloudError> {
        let url = session.endpoint("network").await?;
        Ok(Neutron::new(session, &url))
    }

    /// Smaller pages (tests use it to cross page boundaries with few items).
    pub fn with_page_size(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every item of `GET /v2.0/{path}` with these filters, all pages;
    /// the answer holds them under `key`.
    async fn list<T>(
        &self,
        path: &str,
        key: &str,
        filters: &[(&str, &str)],
        id: impl Fn(&T) -> &str,
    ) -> Result<Vec<T>, CloudError>
    where
        T: serde::de::DeserializeOwned,
    {
        let url = format!("{}/{path}", self.base);
        let page = self.page.to_string();
        marker_pages(SERVICE, &format!("GET {url}"), self.page, id, |marker| {
            let mut query = filters.to_vec();
            query.push(("limit", page.as_str()));
            let marker = marker.unwrap_or_default();
            if !marker.is_empty() {
                query.push(("marker", &marker));
            }
            let page_url = with_query(SERVICE, &url, &query);
            async move {
                let page_url = page_url?;
                let mut body: Map<String, Value> = self
                    .session
                    .json(SERVICE, Method::GET, &page_url, |r| {
                        r.timeout(REQUEST_TIMEOUT)
                    })
                    .await?;
                let items = body.remove(key).unwrap_or(Value::Array(vec![]));
                serde_json::from_value(items).map_err(|e| CloudError::Protocol {
                    service: SERVICE,
                    what: format!("GET {page_url}"),
                    message: error_chain(&e),
                })
            }
        })
        .await
    }

    /// `POST /v2.0/{path}` with `{key: body}`; the answer's `key`.
    async fn create<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, CloudError> {
        let url = format!("{}/{path}", self.base);
        self.one(Method::POST, &url, body).await
    }

    /// A request whose body and answer are one object under a key
    /// (`{"floatingip": {…}}`).
    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: &Value,
    ) -> Result<T, CloudError> {
        let answer: Map<String, Value> = self
            .session
            .json(SERVICE, method.clone(), url, |r| {
                r.json(body).timeout(REQUEST_TIMEOUT)
            })
            .await?;
        let inner = answer
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or(Value::Null);
        serde_json::from_value(inner).map_err(|e| CloudError::Protocol {
            service: SERVICE,
            what: format!("{method} {url}"),
            message: error_chain(&e),
        })
    }

    async fn delete(&self, path: &str) -> Result<bool, CloudError> {
        let url = format!("{}/{path}", self.base);
        match self
            .session
            .send(SERVICE, Method::DELETE, &url, |r| {
                r.timeout(REQUEST_TIMEOUT)
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Neutron writes `"description": null` on some rules.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl NetworkService for Neutron<'_> {
    async fn networks(&self, filters: &[(&str, &str)]) -> Result<Vec<Network>, CloudError> {
        self.list("networks", "networks", filters, |n: &Network| &n.id)
            .await
    }

    async fn ports(&self, filters: &[(&str, &str)]) -> Result<Vec<Port>, CloudError> {
        self.list("ports", "ports", filters, |p: &Port| &p.id).await
    }

    async fn security_groups(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<SecurityGroup>, CloudError> {
        self.list(
            "security-groups",
            "security_groups",
            filters,
            |g: &SecurityGroup| &g.id,
        )
        .await
    }

    async fn create_security_group(
        &self,
        group: &NewSecurityGroup,
    ) -> Result<SecurityGroup, CloudError> {
        let body = json!({ "security_group": {
            "name": group.name, "description": group.description
        } });
        self.create("security-groups", &body).await
    }

    async fn delete_security_group(&self, id: &str) -> Result<bool, CloudError> {
        self.delete(&format!("security-groups/{}", encode(id)))
            .await
    }

    async fn security_group_rules(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<SecurityGroupRule>, CloudError> {
        self.list(
            "security-group-rules",
            "security_group_rules",
            filters,
            |r: &SecurityGroupRule| &r.id,
        )
        .await
    }

    async fn create_security_group_rule(
        &self,
        rule: &NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule, CloudError> {
        self.create("security-group-rules", &rule.body()).await
    }

    async fn delete_security_group_rule(&self, id: &str) -> Result<bool, CloudError> {
        self.delete(&format!("security-group-rules/{}", encode(id)))
            .await
    }

    async fn floating_ips(&self, filters: &[(&str, &str)]) -> Result<Vec<FloatingIp>, CloudError> {
        self.list("floatingips", "floatingips", filters, |f: &FloatingIp| {
            &f.id
        })
        .await
    }

    async fn create_floating_ip(&self, ip: &NewFloatingIp) -> Result<FloatingIp, CloudError> {
        let mut o = Map::new();
        o.insert("floating_network_id".into(), json!(ip.network_id));
        if let Some(d) = &ip.description {
            o.insert("description".into(), json!(d));
        }
        if let Some(p) = &ip.port_id {
            o.insert("port_id".into(), json!(p));
        }
        self.create("floatingips", &json!({ "floatingip": o }))
            .await
    }

    async fn associate_floating_ip(
        &self,
        id: &str,
        port_id: &str,
    ) -> Result<FloatingIp, CloudError> {
        let url = format!("{}/floatingips/{}", self.base, encode(id));
        self.one(
            Method::PUT,
            &url,
            &json!({ "floatingip": { "port_id": port_id } }),
        )
        .await
    }

    async fn disassociate_floating_ip(&self, id: &str) -> Result<FloatingIp, CloudError> {
        let url = format!("{}/floatingips/{}", self.base, encode(id));
        self.one(
            Method::PUT,
            &url,
            &json!({ "floatingip": { "port_id": null } }),
        )
        .await
    }

    async fn delete_floating_ip(&self, id: &str) -> Result<bool, CloudError> {
        self.delete(&format!("floatingips/{}", encode(id))).await
    }

    async fn quotas(&self) -> Result<Option<NetworkQuotas>, CloudError> {
        let Some(project) = self.session.project_id().await? else {
            return Ok(None);
        };
        let url = format!("{}/quotas/{}/details", self.base, encode(&project));
        let mut body: Map<String, Value> = match self
            .session
            .json(SERVICE, Method::GET, &url, |r| r.timeout(REQUEST_TIMEOUT))
            .await
        {
            Ok(b) => b,
            // No quota_details extension: the cloud does not say.
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let quota = body.remove("quota").unwrap_or(Value::Null);
        let mut all: std::collections::BTreeMap<String, QuotaDetail> =
            serde_json::from_value(quota).map_err(|e| CloudError::Protocol {
                service: SERVICE,
                what: format!("GET {url}"),
                message: error_chain(&e),
            })?;
        let mut take = |k: &str| all.remove(k).map(|d| d.quota());
        Ok(
            match (
                take("floatingip"),
                take("security_group"),
                take("security_group_rule"),
            ) {
                (Some(f), Some(g), Some(r)) => Some(NetworkQuotas {
                    floating_ips: f,
                    security_groups: g,
                    security_group_rules: r,
                }),
                _ => None,
            },
        )
    }

    async fn add_tag(&self, resource: Tagged, id: &str, tag: &str) -> Result<(), CloudError> {
        check_tag(tag, MAX_TAG).map_err(|problem: Invalid| CloudError::Invalid {
            service: SERVICE,
            what: format!("a tag of {} {id}", resource.as_str()),
            problem,
        })?;
        let url = format!(
            "{}/{resource}/{}/tags/{}",
            self.base,
            encode(id),
            encode(tag)
        );
        self.session
            .send(SERVICE, Method::PUT, &url, |r| r.timeout(REQUEST_TIMEOUT))
            .await?;
        Ok(())
    }

    async fn remove_tag(&self, resource: Tagged, id: &str, tag: &str) -> Result<(), CloudError> {
        let url = format!(
            "{}/{resource}/{}/tags/{}",
            self.base,
            encode(id),
            encode(tag)
        );
        match self
            .session
            .send(SERVICE, Method::DELETE, &url, |r| {
                r.timeout(REQUEST_TIMEOUT)
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_with_their_external_flag() {
        let n: Vec<Network> = serde_json::from_value(json!([
            {"id": "n1", "name": "ext-floating1", "status": "ACTIVE", "router:external": true,
             "shared": false, "subnets": ["s1"], "tags": [], "mtu": 1500, "admin_state_up": true},
            {"id": "n2", "name": "private", "status": "DOWN", "subnets": []}
        ]))
        .unwrap();
        assert!(n[0].external && !n[0].shared);
        assert_eq!(n[0].subnets, ["s1"]);
        assert!(!n[1].external);
    }

    /// A group as the playground's Neutron answered its creation.
    fn group() -> Value {
        json!({"id": "sg1", "name": "ingot-visio", "stateful": true, "tenant_id": "p",
            "description": "d", "shared": false, "tags": ["ingot"],
            "security_group_rules": [
                {"id": "r1", "tenant_id": "p", "security_group_id": "sg1", "ethertype": "IPv6",
                 "direction": "egress", "protocol": null, "port_range_min": null,
                 "port_range_max": null, "remote_ip_prefix": null, "remote_address_group_id": null,
                 "normalized_cidr": null, "remote_group_id": null, "standard_attr_id": 12,
                 "description": null, "tags": [], "created_at": "2026-12-01T22:33:15Z"},
                {"id": "r2", "security_group_id": "sg1", "ethertype": "IPv4", "direction": "ingress",
                 "protocol": "udp", "port_range_min": 10000, "port_range_max": 10000,
                 "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": null, "description": "jvb"}
            ],
            "project_id": "p"})
    }

    #[test]
    fn a_group_with_its_rules() {
        let g: SecurityGroup = serde_json::from_value(group()).unwrap();
        assert_eq!(g.tags, ["ingot"]);
        let egress = &g.rules[0];
        assert_eq!(
            (egress.direction, egress.ethertype, &egress.protocol),
            (Direction::Egress, Ethertype::Ipv6, &None)
        );
        assert_eq!(egress.description, "");
        let udp = &g.rules[1];
        assert_eq!(udp.protocol, Some(Protocol::Udp));
        assert_eq!(
            (udp.port_range_min, udp.port_range_max),
            (Some(10000), Some(10000))
        );
        assert_eq!(udp.remote_ip_prefix.as_deref(), Some("0.0.0.0/0"));
    }

    #[test]
    fn protocols_others_made_are_kept_not_refused() {
        for (text, p) in [
            ("tcp", Protocol::Tcp),
            ("udp", Protocol::Udp),
            ("icmp", Protocol::Icmp),
            ("ipv6-icmp", Protocol::Ipv6Icmp),
            ("icmpv6", Protocol::Ipv6Icmp),
            ("gre", Protocol::Other("gre".into())),
            ("47", Protocol::Other("47".into())),
        ] {
            assert_eq!(text.parse::<Protocol>().unwrap(), p);
            assert_eq!(serde_json::from_value::<Protocol>(json!(text)).unwrap(), p);
        }
        assert_eq!(Protocol::Ipv6Icmp.to_string(), "ipv6-icmp");
        assert_eq!(Protocol::Other("gre".into()).to_string(), "gre");
    }

    #[test]
    fn closed_sets_round_trip() {
        for d in Direction::ALL {
            assert_eq!(d.as_str().parse::<Direction>(), Ok(*d));
        }
        for e in Ethertype::ALL {
            assert_eq!(e.as_str().parse::<Ethertype>(), Ok(*e));
        }
        for t in Tagged::ALL {
            assert_eq!(t.as_str().parse::<Tagged>(), Ok(*t));
        }
        assert_eq!(
            "ipv4".parse::<Ethertype>().unwrap_err().to_string(),
            "unknown ethertype `ipv4`; expected one of: IPv4, IPv6"
        );
        assert_eq!(Tagged::SecurityGroup.to_string(), "security-groups");
    }

    #[test]
    fn a_rule_body_sends_only_what_is_set() {
        let r = NewSecurityGroupRule::ingress(
            "sg1",
            Ethertype::Ipv6,
            Protocol::Tcp,
            (443, 443),
            Some("::/0"),
        );
        assert_eq!(
            r.body(),
            json!({"security_group_rule": {"security_group_id": "sg1", "direction": "ingress",
                "ethertype": "IPv6", "protocol": "tcp", "port_range_min": 443,
                "port_range_max": 443, "remote_ip_prefix": "::/0"}})
        );
        let any = NewSecurityGroupRule {
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            description: Some("all out".into()),
            direction: Direction::Egress,
            ..r
        };
        assert_eq!(
            any.body(),
            json!({"security_group_rule": {"security_group_id": "sg1", "direction": "egress",
                "ethertype": "IPv6", "description": "all out"}})
        );
    }

    #[test]
    fn ports_and_floating_ips_parse() {
        let p: Port = serde_json::from_value(json!({
            "id": "p1", "name": "", "network_id": "n1", "device_id": "srv1",
            "device_owner": "compute:nova", "status": "DOWN", "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.99.0.5"}],
            "security_groups": ["sg1"], "tags": [], "binding:vif_type": "binding_failed"
        }))
        .unwrap();
        assert_eq!(p.fixed_ips[0].ip_address, "10.99.0.5");
        let f: FloatingIp = serde_json::from_value(json!({
            "id": "f1", "floating_ip_address": "203.0.113.9", "floating_network_id": "n9",
            "router_id": null, "port_id": null, "fixed_ip_address": null, "status": "DOWN",
            "description": null, "tags": ["ingot-deployment:visio"]
        }))
        .unwrap();
        assert_eq!((f.port_id, f.description.as_str()), (None, ""));
        assert_eq!(f.tags, ["ingot-deployment:visio"]);
    }

    #[test]
    fn neutron_tags_are_checked_before_sending() {
        assert_eq!(check_tag(&"t".repeat(255), MAX_TAG), Ok(()));
        assert_eq!(
            check_tag(&"t".repeat(256), MAX_TAG)
                .unwrap_err()
                .to_string(),
            format!(
                "tag `{}`: expected 1 to 255 characters without `/` or `,`",
                "t".repeat(256)
            )
        );
    }
}
