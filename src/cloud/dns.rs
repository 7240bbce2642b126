//! The DNS service (Designate v2): zones, and the recordsets of a zone.
//! One trait, one HTTP implementation, at the catalog's `dns` endpoint.
//!
//! Designate's changes are asynchronous: a create, update or delete is
//! accepted (HTTP 202) with status `PENDING` and becomes `ACTIVE` once the
//! DNS servers have it; callers poll [`DnsService::recordset`]. Creates are
//! POSTs and are not retried: after a lost answer, find the recordset by
//! its name and type (a second create of the same name and type is a 409).
//!
//! Designate has no tags or metadata on recordsets; ingot marks the ones a
//! deployment owns by their `description` ([`deployment_description`],
//! [`Recordset::deployment`]).

use super::enums::string_enum;
use super::error::Invalid;
use super::keystone::error_chain;
use super::request::{encode, marker_pages, with_query};
use super::{CloudError, Session};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::Duration;

string_enum! {
    /// Where a zone or recordset is with the DNS servers.
    pub enum DnsStatus("DNS status") {
        /// Every DNS server of the pool serves it.
        Active = "ACTIVE",
        /// A change is on its way to the DNS servers.
        Pending = "PENDING",
        /// The DNS servers did not take the change.
        Error = "ERROR",
    }
}

string_enum! {
    /// The change a zone or recordset is waiting for (`Nothing` once it
    /// is active).
    pub enum DnsAction("DNS action") {
        Nothing = "NONE",
        Create = "CREATE",
        Update = "UPDATE",
        Delete = "DELETE",
    }
}

string_enum! {
    /// The record types Designate knows.
    pub enum RecordType("record type") {
        A = "A",
        Aaaa = "AAAA",
        Cname = "CNAME",
        Mx = "MX",
        Txt = "TXT",
        Srv = "SRV",
        Caa = "CAA",
        Ns = "NS",
        Ptr = "PTR",
        Soa = "SOA",
        Spf = "SPF",
        Sshfp = "SSHFP",
        Naptr = "NAPTR",
        Cert = "CERT",
    }
}

/// Designate writes `"description": null` when none was given.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Zone {
    pub id: String,
    /// Fully qualified, with the final dot: `example.com.`
    pub name: String,
    #[serde(default)]
    pub email: String,
    /// The default TTL of its recordsets.
    #[serde(default)]
    pub ttl: Option<u32>,
    #[serde(default)]
    pub serial: u64,
    pub status: DnsStatus,
    pub action: DnsAction,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub description: String,
    #[serde(default)]
    pub project_id: Option<String>,
    /// `PRIMARY` or `SECONDARY`.
    #[serde(rename = "type", default)]
    pub zone_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Recordset {
    pub id: String,
    pub zone_id: String,
    /// Fully qualified, with the final dot: `www.example.com.`
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: RecordType,
    /// The data of each record (`192.0.2.1`, `"v=spf1 -all"`, …).
    #[serde(default)]
    pub records: Vec<String>,
    /// `None`: the zone's TTL.
    #[serde(default)]
    pub ttl: Option<u32>,
    pub status: DnsStatus,
    pub action: DnsAction,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub description: String,
}

/// The description that marks a recordset as a deployment's.
const DEPLOYMENT: &str = "ingot deployment ";

/// The `description` of the recordsets deployment `name` owns.
pub fn deployment_description(name: &str) -> String {
    format!("{DEPLOYMENT}{name}")
}

impl Recordset {
    /// The deployment that owns it (its description is
    /// [`deployment_description`]), if any.
    pub fn deployment(&self) -> Option<&str> {
        self.description
            .strip_prefix(DEPLOYMENT)
            .filter(|name| !name.is_empty())
    }
}

/// What `create_recordset` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecordset {
    /// Fully qualified, with the final dot, inside the zone.
    pub name: String,
    pub record_type: RecordType,
    pub records: Vec<String>,
    /// `None`: the zone's TTL.
    pub ttl: Option<u32>,
    pub description: Option<String>,
}

/// Designate refuses longer names (RFC 1035).
pub const MAX_NAME: usize = 255;

/// A name as Designate takes it: fully qualified, with the final dot
/// (added when missing). Empty, too long or padded with whitespace is
/// refused before sending; what else Designate refuses (an empty label, a
/// name outside the zone, a record's data) it says in its 400 answer.
pub fn fqdn(name: &str) -> Result<String, Invalid> {
    if name.trim_end_matches('.').is_empty() {
        return Err(Invalid::EmptyName);
    }
    if name.trim() != name {
        return Err(Invalid::NameWhitespace { name: name.into() });
    }
    let name = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    let len = name.chars().count();
    if len > MAX_NAME {
        return Err(Invalid::NameTooLong { len });
    }
    Ok(name)
}

impl NewRecordset {
    /// The body of the create, its name made fully qualified.
    fn body(&self) -> Result<Value, Invalid> {
        let mut o = Map::new();
        o.insert("name".into(), json!(fqdn(&self.name)?));
        o.insert("type".into(), json!(self.record_type));
        o.insert("records".into(), json!(self.records));
        if let Some(t) = self.ttl {
            o.insert("ttl".into(), json!(t));
        }
        if let Some(d) = &self.description {
            o.insert("description".into(), json!(d));
        }
        Ok(Value::Object(o))
    }
}

/// `…/v2` of Designate at `url`, given with or without its `/v2`.
fn base_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let root = url.strip_suffix("/v2").unwrap_or(url);
    format!("{root}/v2")
}

fn recordset_url(base: &str, zone_id: &str, id: &str) -> String {
    format!("{base}/zones/{}/recordsets/{}", encode(zone_id), encode(id))
}

// `async fn` in a public trait hides the futures' `Send`-ness; ingot drives
// these futures on one current-thread runtime, so that costs nothing.
#[allow(async_fn_in_trait)]
pub trait DnsService {
    /// Zones matching the filters (`name=example.com.`, `status=ACTIVE`),
    /// all pages. Designate takes `*` in a filter as a wildcard.
    async fn zones(&self, filters: &[(&str, &str)]) -> Result<Vec<Zone>, CloudError>;
    /// The zone of that exact name (the final dot may be left out), if
    /// this project has it.
    async fn zone_by_name(&self, name: &str) -> Result<Option<Zone>, CloudError>;

    /// The zone's recordsets matching the filters (`name=www.example.com.`,
    /// `type=A`, `description=…`), all pages; its SOA and NS recordsets
    /// too.
    async fn recordsets(
        &self,
        zone_id: &str,
        filters: &[(&str, &str)],
    ) -> Result<Vec<Recordset>, CloudError>;
    /// One recordset; `None` once it is gone.
    async fn recordset(&self, zone_id: &str, id: &str) -> Result<Option<Recordset>, CloudError>;
    /// Creates a recordset (`PENDING` until the DNS servers have it).
    /// After a lost answer, find it by name and type.
    async fn create_recordset(
        &self,
        zone_id: &str,
        recordset: &NewRecordset,
    ) -> Result<Recordset, CloudError>;
    /// Replaces its records and TTL (`None`: the zone's), keeping its name,
    /// type and description (`PENDING` until the DNS servers have it).
    async fn update_recordset(
        &self,
        zone_id: &str,
        id: &str,
        records: &[String],
        ttl: Option<u32>,
    ) -> Result<Recordset, CloudError>;
    /// Deletes it (it disappears once the DNS servers dropped it); `false`
    /// if it was already gone.
    async fn delete_recordset(&self, zone_id: &str, id: &str) -> Result<bool, CloudError>;
}

pub struct Designate<'a> {
    session: &'a Session,
    /// `.../v2`
    base: String,
    /// Items per page of the listings.
    page: usize,
}

const SERVICE: &str = "designate";
/// Designate's `max_limit_v2` is 1000 by default.
const PAGE: usize = 500;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl<'a> Designate<'a> {
    /// Designate at `url`, with or without its `/v2` (catalogs name the
    /// API's root).
    pub fn new(session: &'a Session, url: &str) -> Self {
        Designate {
            session,
            base: base_url(url),
            page: PAGE,
        }
    }

    /// Designate as the session's catalog (or override) names it.
    pub async fn from_session(session: &'a Session) -> Result<Self, CloudError> {
        let url = session.endpoint("dns").await?;
        Ok(Designate::new(session, &url))
    }

    /// Smaller pages (tests use it to cross page boundaries with few items).
    pub fn with_page_size(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn invalid(what: String, problem: Invalid) -> CloudError {
        CloudError::Invalid {
            service: SERVICE,
            what,
            problem,
        }
    }

    fn protocol(what: String, e: &serde_json::Error) -> CloudError {
        CloudError::Protocol {
            service: SERVICE,
            what,
            message: error_chain(e),
        }
    }

    /// Every item of `GET /v2/{path}` with these filters, all pages; the
    /// answer holds them under `key`.
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
                serde_json::from_value(items)
                    .map_err(|e| Self::protocol(format!("GET {page_url}"), &e))
            }
        })
        .await
    }

    /// A request whose answer is one recordset, as Designate answers
    /// creates, updates and deletes (no wrapping key).
    async fn one(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Recordset, CloudError> {
        let answer: Value = self
            .session
            .json(SERVICE, method.clone(), url, |r| {
                let r = r.timeout(REQUEST_TIMEOUT);
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            })
            .await?;
        serde_json::from_value(answer).map_err(|e| Self::protocol(format!("{method} {url}"), &e))
    }

    fn recordset_url(&self, zone_id: &str, id: &str) -> String {
        recordset_url(&self.base, zone_id, id)
    }
}

impl DnsService for Designate<'_> {
    async fn zones(&self, filters: &[(&str, &str)]) -> Result<Vec<Zone>, CloudError> {
        self.list("zones", "zones", filters, |z: &Zone| &z.id).await
    }

    async fn zone_by_name(&self, name: &str) -> Result<Option<Zone>, CloudError> {
        let name = fqdn(name).map_err(|p| Self::invalid(format!("zone {name}"), p))?;
        // `*` is the filter's wildcard: the exact name is picked below.
        let zones = self.zones(&[("name", &name)]).await?;
        Ok(zones.into_iter().find(|z| z.name == name))
    }

    async fn recordsets(
        &self,
        zone_id: &str,
        filters: &[(&str, &str)],
    ) -> Result<Vec<Recordset>, CloudError> {
        let path = format!("zones/{}/recordsets", encode(zone_id));
        self.list(&path, "recordsets", filters, |r: &Recordset| &r.id)
            .await
    }

    async fn recordset(&self, zone_id: &str, id: &str) -> Result<Option<Recordset>, CloudError> {
        match self
            .one(Method::GET, &self.recordset_url(zone_id, id), None)
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_recordset(
        &self,
        zone_id: &str,
        recordset: &NewRecordset,
    ) -> Result<Recordset, CloudError> {
        let body = recordset.body().map_err(|p| {
            Self::invalid(
                format!("recordset {} {}", recordset.record_type, recordset.name),
                p,
            )
        })?;
        let url = format!("{}/zones/{}/recordsets", self.base, encode(zone_id));
        self.one(Method::POST, &url, Some(&body)).await
    }

    async fn update_recordset(
        &self,
        zone_id: &str,
        id: &str,
        records: &[String],
        ttl: Option<u32>,
    ) -> Result<Recordset, CloudError> {
        let body = json!({ "records": records, "ttl": ttl });
        self.one(Method::PUT, &self.recordset_url(zone_id, id), Some(&body))
            .await
    }

    async fn delete_recordset(&self, zone_id: &str, id: &str) -> Result<bool, CloudError> {
        match self
            .session
            .send(
                SERVICE,
                Method::DELETE,
                &self.recordset_url(zone_id, id),
                |r| r.timeout(REQUEST_TIMEOUT),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zone as Designate 15 (Zed) answers `GET /v2/zones/{id}`.
    fn zone() -> Value {
        json!({
            "id": "3951bc18-097b-4a00-8c1d-52d4a4154b17", "pool_id": "794ccc2c-d751-44fe-b57f-8894c9f5c842",
            "project_id": "f37980f32a4042b4aa74ac1e9dbdc87f", "name": "playground.test.",
            "email": "hostmaster@playground.test", "description": null, "ttl": 300,
            "serial": 1796182908u64, "status": "ACTIVE", "action": "NONE", "version": 2,
            "attributes": {}, "type": "PRIMARY", "masters": [], "transferred_at": null,
            "shared": false, "created_at": "2026-12-02T03:41:48.000000", "updated_at": null,
            "links": {"self": "http://127.0.0.1:9001/v2/zones/3951bc18-097b-4a00-8c1d-52d4a4154b17"}
        })
    }

    fn recordset(description: Value) -> Value {
        json!({
            "id": "3cdb3562-7495-4422-87b5-96d2a158dc33", "zone_id": "3951bc18-097b-4a00-8c1d-52d4a4154b17",
            "project_id": "f37980f32a4042b4aa74ac1e9dbdc87f", "name": "www.playground.test.",
            "zone_name": "playground.test.", "type": "A", "records": ["198.51.100.20", "198.51.100.21"],
            "ttl": 60, "status": "PENDING", "action": "CREATE", "description": description,
            "version": 1, "created_at": "2026-12-02T03:42:01.000000", "updated_at": null,
            "links": {"self": "http://127.0.0.1:9001/v2/zones/z/recordsets/r"}
        })
    }

    #[test]
    fn zones_parse_with_their_status_and_null_description() {
        let z: Zone = serde_json::from_value(zone()).unwrap();
        assert_eq!(z.name, "playground.test.");
        assert_eq!(
            (z.status, z.action),
            (DnsStatus::Active, DnsAction::Nothing)
        );
        assert_eq!(z.ttl, Some(300));
        assert_eq!(z.serial, 1_796_182_908);
        assert_eq!(z.description, "");
        assert_eq!(z.zone_type, "PRIMARY");
        // A listing: `{"zones": [...], "links": ..., "metadata": ...}`.
        let page: Map<String, Value> = serde_json::from_value(json!({
            "zones": [zone()], "links": {"self": "x"}, "metadata": {"total_count": 1}
        }))
        .unwrap();
        let zones: Vec<Zone> = serde_json::from_value(page["zones"].clone()).unwrap();
        assert_eq!(zones, [z]);
    }

    #[test]
    fn recordsets_parse_and_name_their_deployment() {
        let r: Recordset =
            serde_json::from_value(recordset(json!(deployment_description("web")))).unwrap();
        assert_eq!(r.record_type, RecordType::A);
        assert_eq!(r.records, ["198.51.100.20", "198.51.100.21"]);
        assert_eq!(
            (r.status, r.action),
            (DnsStatus::Pending, DnsAction::Create)
        );
        assert_eq!(r.ttl, Some(60));
        assert_eq!(r.deployment(), Some("web"));
        for other in [
            json!(null),
            json!("made by hand"),
            json!("ingot deployment "),
        ] {
            let r: Recordset = serde_json::from_value(recordset(other)).unwrap();
            assert_eq!(r.deployment(), None);
        }
        // No TTL of its own: the zone's.
        let mut v = recordset(json!(null));
        v["ttl"] = Value::Null;
        v["type"] = json!("AAAA");
        let r: Recordset = serde_json::from_value(v).unwrap();
        assert_eq!((r.ttl, r.record_type), (None, RecordType::Aaaa));
    }

    #[test]
    fn unknown_statuses_and_types_are_errors_that_name_them() {
        let mut v = recordset(json!(null));
        v["status"] = json!("SUCCESS");
        let e = serde_json::from_value::<Recordset>(v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown DNS status `SUCCESS`"), "{e}");
        let mut v = recordset(json!(null));
        v["type"] = json!("LOC");
        let e = serde_json::from_value::<Recordset>(v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown record type `LOC`"), "{e}");
    }

    #[test]
    fn a_create_body_sends_only_what_is_set() {
        let mut rs = NewRecordset {
            name: "www.playground.test".into(),
            record_type: RecordType::Aaaa,
            records: vec!["2001:db8:100::10".into()],
            ttl: None,
            description: None,
        };
        assert_eq!(
            rs.body().unwrap(),
            json!({"name": "www.playground.test.", "type": "AAAA", "records": ["2001:db8:100::10"]})
        );
        rs.ttl = Some(60);
        rs.description = Some(deployment_description("web"));
        let body = rs.body().unwrap();
        assert_eq!(body["ttl"], 60);
        assert_eq!(body["description"], "ingot deployment web");
    }

    #[test]
    fn names_are_made_fully_qualified_or_refused() {
        assert_eq!(fqdn("playground.test").unwrap(), "playground.test.");
        assert_eq!(
            fqdn("*.web.playground.test.").unwrap(),
            "*.web.playground.test."
        );
        assert_eq!(fqdn(""), Err(Invalid::EmptyName));
        assert_eq!(fqdn("."), Err(Invalid::EmptyName));
        assert_eq!(
            fqdn(" www.playground.test."),
            Err(Invalid::NameWhitespace {
                name: " www.playground.test.".into()
            })
        );
        assert_eq!(
            fqdn(&format!("{}.test", "a".repeat(251))),
            Err(Invalid::NameTooLong { len: 257 })
        );
        assert!(fqdn(&format!("{}.test", "a".repeat(249))).is_ok());
    }

    #[test]
    fn the_base_url_gets_its_v2_once() {
        for url in [
            "http://127.0.0.1:9001",
            "http://127.0.0.1:9001/",
            "http://127.0.0.1:9001/v2",
            "http://127.0.0.1:9001/v2/",
        ] {
            assert_eq!(base_url(url), "http://127.0.0.1:9001/v2");
        }
        assert_eq!(
            recordset_url("http://dns.example/v2", "z 1", "r/2"),
            "http://dns.example/v2/zones/z%201/recordsets/r%2F2"
        );
    }
}
