//! The compute service (Nova): servers (which image each one was booted
//! from, for `releases` and `prune`; create, read, stop, start, snapshot,
//! delete, console, metadata and tags, for the builder and deploy),
//! flavors and the project's limits.
//!
//! Every request but [`ComputeService::servers`] asks for one compute
//! microversion, [`MICROVERSION`]: the shapes parsed here are those of
//! that version, whatever the cloud's newest is.

use super::enums::string_enum;
use super::error::Invalid;
use super::request::{base64, base64_len, encode, marker_pages, with_query};
use super::{CloudError, Session};
use reqwest::{Method, RequestBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The compute API microversion ingot speaks, and why this one: it is the
/// first with everything the builder and deploy need.
/// - 2.26: server tags, and the `tags`/`tags-any` list filters;
/// - 2.37: `networks: "none"` and `"auto"` (a build server needs no port);
/// - 2.45: `createImage` answers with the new image's id in its body
///   (before, only in a `Location` header);
/// - 2.47: a server's `flavor` is its description with `original_name`
///   rather than a link to a flavor id that may since have been deleted;
/// - 2.52: tags can be given when the server is created, so no server
///   exists untagged even for a moment (what `ingot gc` finds it by).
///
/// Nova has supported 2.52 since Queens (2018). A cloud older than that
/// answers 406 "Version 2.52 is not supported by the API", which is shown
/// as it is.
pub const MICROVERSION: &str = "2.52";

fn microversion(r: RequestBuilder) -> RequestBuilder {
    r.header("OpenStack-API-Version", format!("compute {MICROVERSION}"))
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub status: String,
    /// The Glance image it was booted from; `None` for a server booted
    /// from a volume (Nova reports `"image": ""`).
    pub image_id: Option<String>,
}

string_enum! {
    /// A server's status as the API shows it.
    pub enum ServerStatus("server status") {
        Active = "ACTIVE",
        Build = "BUILD",
        Deleted = "DELETED",
        Error = "ERROR",
        HardReboot = "HARD_REBOOT",
        Migrating = "MIGRATING",
        Password = "PASSWORD",
        Paused = "PAUSED",
        Reboot = "REBOOT",
        Rebuild = "REBUILD",
        Rescue = "RESCUE",
        Resize = "RESIZE",
        RevertResize = "REVERT_RESIZE",
        Shelved = "SHELVED",
        ShelvedOffloaded = "SHELVED_OFFLOADED",
        Shutoff = "SHUTOFF",
        SoftDeleted = "SOFT_DELETED",
        Suspended = "SUSPENDED",
        Unknown = "UNKNOWN",
        VerifyResize = "VERIFY_RESIZE",
    }
}

/// The hypervisor's view of a server (`OS-EXT-STS:power_state`), which
/// Nova sends as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    NoState,
    Running,
    Paused,
    Shutdown,
    Crashed,
    Suspended,
}

impl PowerState {
    pub fn from_code(code: u64) -> Option<PowerState> {
        Some(match code {
            0 => PowerState::NoState,
            1 => PowerState::Running,
            3 => PowerState::Paused,
            4 => PowerState::Shutdown,
            6 => PowerState::Crashed,
            7 => PowerState::Suspended,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::NoState => "no_state",
            PowerState::Running => "running",
            PowerState::Paused => "paused",
            PowerState::Shutdown => "shutdown",
            PowerState::Crashed => "crashed",
            PowerState::Suspended => "suspended",
        }
    }
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PowerState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = u64::deserialize(d)?;
        PowerState::from_code(code).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown power state {code}; expected 0, 1, 3, 4, 6 or 7"
            ))
        })
    }
}

/// Why a server is in ERROR, as Nova recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Fault {
    pub code: u16,
    #[serde(default)]
    pub message: String,
    /// The traceback or detail; Nova shows it to non-admins only for
    /// faults whose code is not 500.
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
}

string_enum! {
    /// How an address reached a server (`OS-EXT-IPS:type`).
    pub enum AddressKind("address type") {
        Fixed = "fixed",
        Floating = "floating",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Address {
    pub addr: String,
    pub version: u8,
    #[serde(rename = "OS-EXT-IPS:type", default)]
    pub kind: Option<AddressKind>,
    #[serde(rename = "OS-EXT-IPS-MAC:mac_addr", default)]
    pub mac: Option<String>,
}

/// A server as `GET /servers/{id}` shows it at [`MICROVERSION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerDetail {
    pub id: String,
    pub name: String,
    pub status: ServerStatus,
    /// What Nova is doing to it (`spawning`, `image_uploading`,
    /// `powering-off`, …), or `None` when nothing.
    pub task_state: Option<String>,
    pub power_state: Option<PowerState>,
    /// Set when the server is in ERROR (and sometimes kept after).
    pub fault: Option<Fault>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    /// `None` for a server booted from a volume.
    pub image_id: Option<String>,
    /// The flavor's name when the server was created (the microversion
    /// gives `original_name`; a flavor id only below 2.47).
    pub flavor: String,
    /// Per network name, its addresses.
    pub addresses: BTreeMap<String, Vec<Address>>,
    /// `2026-12-01T10:00:00Z`
    pub created: String,
}

#[derive(Debug, Deserialize)]
struct RawServerDetail {
    id: String,
    #[serde(default)]
    name: String,
    status: ServerStatus,
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    task_state: Option<String>,
    #[serde(rename = "OS-EXT-STS:power_state", default)]
    power_state: Option<PowerState>,
    #[serde(default)]
    fault: Option<Fault>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    image: Value,
    #[serde(default)]
    flavor: Value,
    #[serde(default)]
    addresses: BTreeMap<String, Vec<Address>>,
    #[serde(default)]
    created: String,
}

impl From<RawServerDetail> for ServerDetail {
    fn from(r: RawServerDetail) -> Self {
        let flavor = ["original_name", "id"]
            .iter()
            .find_map(|k| r.flavor.get(k).and_then(Value::as_str))
            .unwrap_or_default()
            .to_string();
        ServerDetail {
            image_id: image_id(&r.image),
            id: r.id,
            name: r.name,
            status: r.status,
            task_state: r.task_state,
            power_state: r.power_state,
            fault: r.fault,
            metadata: r.metadata,
            tags: r.tags,
            flavor,
            addresses: r.addresses,
            created: r.created,
        }
    }
}

fn image_id(image: &Value) -> Option<String> {
    image.get("id").and_then(Value::as_str).map(str::to_string)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    #[serde(rename = "ram")]
    pub ram_mb: u64,
    /// 0: the root disk must be a volume.
    #[serde(rename = "disk")]
    pub disk_gb: u64,
}

/// One quota of the project: its limit and what is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quota {
    /// `None`: unlimited (Nova's -1).
    pub max: Option<u64>,
    pub used: u64,
}

impl Quota {
    /// From the cloud's numbers, where -1 is unlimited.
    pub fn new(max: i64, used: i64) -> Self {
        Quota {
            max: u64::try_from(max).ok(),
            used: u64::try_from(used).unwrap_or(0),
        }
    }

    /// What is left; `None` when unlimited.
    pub fn remaining(&self) -> Option<u64> {
        self.max.map(|m| m.saturating_sub(self.used))
    }
}

/// The project's compute limits, from `GET /limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub instances: Quota,
    pub cores: Quota,
    pub ram_mb: Quota,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAbsolute {
    max_total_instances: i64,
    #[serde(default)]
    total_instances_used: i64,
    max_total_cores: i64,
    #[serde(default)]
    total_cores_used: i64,
    #[serde(rename = "maxTotalRAMSize")]
    max_total_ram_size: i64,
    #[serde(rename = "totalRAMUsed", default)]
    total_ram_used: i64,
}

impl From<RawAbsolute> for Limits {
    fn from(a: RawAbsolute) -> Self {
        Limits {
            instances: Quota::new(a.max_total_instances, a.total_instances_used),
            cores: Quota::new(a.max_total_cores, a.total_cores_used),
            ram_mb: Quota::new(a.max_total_ram_size, a.total_ram_used),
        }
    }
}

/// Which networks a new server gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Networks {
    /// No port at all (a build server talks through its console only).
    None,
    /// Nova picks the project's network, or fails if there is not exactly one.
    Auto,
    /// One port on each of these networks, by id.
    Ids(Vec<String>),
}

/// What `create_server` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServer {
    pub name: String,
    pub image_id: String,
    pub flavor_id: String,
    pub networks: Networks,
    /// The raw bytes; the client encodes them as base64. Compress them
    /// first when they may exceed Nova's limit (cloud-init reads gzip).
    pub user_data: Option<Vec<u8>>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    /// Names (or ids); empty: Nova's `default` group.
    pub security_groups: Vec<String>,
    pub key_name: Option<String>,
}

/// Nova refuses a server with more tags than this.
pub const MAX_TAGS: usize = 50;
/// Nova's limit on `user_data`, in base64 characters.
pub const MAX_USER_DATA: usize = 65_535;

impl NewServer {
    /// What Nova would refuse, said before anything is sent.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_name(&self.name)?;
        check_metadata(&self.metadata)?;
        if self.tags.len() > MAX_TAGS {
            return Err(Invalid::TooManyTags {
                count: self.tags.len(),
                max: MAX_TAGS,
            });
        }
        for t in &self.tags {
            check_tag(t)?;
        }
        if let Some(data) = &self.user_data {
            let chars = base64_len(data.len());
            if chars > MAX_USER_DATA {
                return Err(Invalid::UserDataTooLong {
                    bytes: data.len(),
                    chars,
                });
            }
        }
        Ok(())
    }

    fn body(&self) -> Value {
        let mut o = Map::new();
        o.insert("name".into(), json!(self.name));
        o.insert("imageRef".into(), json!(self.image_id));
        o.insert("flavorRef".into(), json!(self.flavor_id));
        o.insert(
            "networks".into(),
            match &self.networks {
                Networks::None => json!("none"),
                Networks::Auto => json!("auto"),
                Networks::Ids(ids) => ids.iter().map(|id| json!({ "uuid": id })).collect(),
            },
        );
        if let Some(data) = &self.user_data {
            o.insert("user_data".into(), json!(base64(data)));
        }
        if !self.metadata.is_empty() {
            o.insert("metadata".into(), json!(self.metadata));
        }
        if !self.tags.is_empty() {
            o.insert("tags".into(), json!(self.tags));
        }
        if !self.security_groups.is_empty() {
            let groups: Vec<Value> = self
                .security_groups
                .iter()
                .map(|g| json!({ "name": g }))
                .collect();
            o.insert("security_groups".into(), Value::Array(groups));
        }
        if let Some(k) = &self.key_name {
            o.insert("key_name".into(), json!(k));
        }
        json!({ "server": o })
    }
}

/// Nova's server and image names: 1 to 255 printable characters, no
/// whitespace at either end.
fn check_name(name: &str) -> Result<(), Invalid> {
    let len = name.chars().count();
    if len == 0 {
        return Err(Invalid::EmptyName);
    }
    if len > 255 {
        return Err(Invalid::NameTooLong { len });
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(Invalid::NameWhitespace { name: name.into() });
    }
    Ok(())
}

/// Nova's metadata schema: keys match `^[a-zA-Z0-9-_:. ]{1,255}$`, values
/// are at most 255 characters.
fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), Invalid> {
    for (k, v) in metadata {
        check_metadata_item(k, v)?;
    }
    Ok(())
}

fn check_metadata_item(key: &str, value: &str) -> Result<(), Invalid> {
    let key_ok = (1..=255).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:. ".contains(&b));
    if !key_ok {
        return Err(Invalid::MetadataKey { key: key.into() });
    }
    let len = value.chars().count();
    if len > 255 {
        return Err(Invalid::MetadataValue {
            key: key.into(),
            len,
        });
    }
    Ok(())
}

/// Nova's tags: 1 to 60 characters, no `/` (it would split the URL of
/// `PUT /servers/{id}/tags/{tag}`) and no `,` (the list filters' separator).
fn check_tag(tag: &str) -> Result<(), Invalid> {
    super::request::check_tag(tag, 60)
}

// `async fn` in a public trait hides the futures' `Send`-ness; ingot drives
// these futures on one current-thread runtime, so that costs nothing.
#[allow(async_fn_in_trait)]
pub trait ComputeService {
    /// Every server of the project, all pages.
    async fn servers(&self) -> Result<Vec<Server>, CloudError>;
    /// Every server matching the filters (`tags=ingot-build`,
    /// `name=^ingot-build-`: names are regular expressions), all pages.
    async fn servers_detail(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<ServerDetail>, CloudError>;
    /// The server, or `None` if it does not exist (any more).
    async fn server(&self, id: &str) -> Result<Option<ServerDetail>, CloudError>;
    /// Every flavor the project may use, all pages.
    async fn flavors(&self) -> Result<Vec<Flavor>, CloudError>;
    async fn limits(&self) -> Result<Limits, CloudError>;
    /// Creates a server and returns its id; it starts in BUILD. Checked
    /// with [`NewServer::validate`] first.
    ///
    /// Not retried: a create whose answer was lost may still have made the
    /// server. A caller cleaning up after such an error finds it by its
    /// name or tags (`servers_detail`) and deletes it.
    async fn create_server(&self, server: &NewServer) -> Result<String, CloudError>;
    /// The last `lines` lines of the console log (all of it with `None`).
    /// Nova returns it as ASCII: other bytes arrive as U+FFFD. A POST,
    /// so not retried; it changes nothing, and a poller simply asks again.
    async fn console_output(&self, id: &str, lines: Option<u32>) -> Result<String, CloudError>;
    /// Asks the server to power off (`os-stop`); it becomes SHUTOFF later.
    /// A server already SHUTOFF is success.
    async fn stop_server(&self, id: &str) -> Result<(), CloudError>;
    /// Asks a SHUTOFF server to power on (`os-start`); it becomes ACTIVE
    /// later. A server already ACTIVE is success.
    async fn start_server(&self, id: &str) -> Result<(), CloudError>;
    /// Snapshots the server into a new Glance image called `name` and
    /// returns its id at once; the image is `queued`, then `saving`, then
    /// `active` (or `killed`). `metadata` becomes image properties.
    ///
    /// Not retried: after a lost answer the image may exist; find it in
    /// Glance by its name.
    async fn create_image(
        &self,
        server_id: &str,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<String, CloudError>;
    /// Deletes the server (it goes away asynchronously); `false` if it was
    /// already gone.
    async fn delete_server(&self, id: &str) -> Result<bool, CloudError>;
    /// Sets these metadata items, keeping the others, and returns the
    /// server's metadata afterwards. Not retried (a POST); it may be
    /// repeated safely by the caller.
    async fn update_server_metadata(
        &self,
        id: &str,
        items: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, CloudError>;
    async fn set_server_metadata_item(
        &self,
        id: &str,
        key: &str,
        value: &str,
    ) -> Result<(), CloudError>;
    /// `false` if the server had no such item.
    async fn delete_server_metadata_item(&self, id: &str, key: &str) -> Result<bool, CloudError>;
    async fn add_server_tag(&self, id: &str, tag: &str) -> Result<(), CloudError>;
    /// A tag the server does not have is no error.
    async fn remove_server_tag(&self, id: &str, tag: &str) -> Result<(), CloudError>;
    /// Attaches a Cinder volume (`os-volume_attachments`); Nova reserves
    /// it at once and it becomes `in-use` later (poll the volume). Not
    /// retried: a second attach of the same volume is a 409, and a caller
    /// after a lost answer reads the volume's attachments.
    async fn attach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), CloudError>;
    /// Detaches it; it becomes `available` later. `false` if it was not
    /// attached to that server (or the server is gone).
    async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<bool, CloudError>;
    /// The ids of the volumes attached to the server.
    async fn volume_attachments(&self, server_id: &str) -> Result<Vec<String>, CloudError>;
}

pub struct Nova<'a> {
    session: &'a Session,
    base: String,
    /// Items per page of the paged listings.
    page: usize,
}

const SERVICE: &str = "nova";
const PAGE: usize = 500;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

impl<'a> Nova<'a> {
    pub fn new(session: &'a Session, url: &str) -> Self {
        Nova {
            session,
            base: url.trim_end_matches('/').to_string(),
            page: PAGE,
        }
    }

    pub async fn from_session(session: &'a Session) -> Result<Self, CloudError> {
        let url = session.endpoint("compute").await?;
        Ok(Nova::new(session, &url))
    }

    /// Smaller pages (tests use it to cross page boundaries with few items).
    pub fn with_page_size(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    fn server_url(&self, id: &str) -> String {
        format!("{}/servers/{}", self.base, encode(id))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, CloudError> {
        self.session
            .json(SERVICE, Method::GET, url, |r| {
                microversion(r).timeout(REQUEST_TIMEOUT)
            })
            .await
    }

    async fn action(&self, id: &str, body: &Value) -> Result<reqwest::Response, CloudError> {
        let url = format!("{}/action", self.server_url(id));
        self.session
            .send(SERVICE, Method::POST, &url, |r| {
                microversion(r).json(body).timeout(REQUEST_TIMEOUT)
            })
            .await
    }

    /// `os-stop` / `os-start`: a 409 means the server is not in a state to
    /// do it, which is success when it is already where it was sent.
    async fn power(&self, id: &str, action: &str, done: ServerStatus) -> Result<(), CloudError> {
        match self.action(id, &json!({ action: null })).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(409) => match self.server(id).await? {
                Some(s) if s.status == done => Ok(()),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn invalid(what: String, problem: Invalid) -> CloudError {
        CloudError::Invalid {
            service: SERVICE,
            what,
            problem,
        }
    }
}

#[derive(Deserialize)]
struct RawServer {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    image: Value,
}

impl From<RawServer> for Server {
    fn from(r: RawServer) -> Self {
        Server {
            image_id: image_id(&r.image),
            id: r.id,
            name: r.name,
            status: r.status,
        }
    }
}

impl ComputeService for Nova<'_> {
    async fn servers(&self) -> Result<Vec<Server>, CloudError> {
        #[derive(Deserialize)]
        struct Page {
            servers: Vec<RawServer>,
        }
        let mut servers: Vec<Server> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = format!("{}/servers/detail?limit={PAGE}", self.base);
            if let Some(m) = &marker {
                url.push_str(&format!("&marker={m}"));
            }
            let page: Page = self
                .session
                .json(SERVICE, Method::GET, &url, |r| {
                    r.timeout(Duration::from_secs(120))
                })
                .await?;
            let n = page.servers.len();
            servers.extend(page.servers.into_iter().map(Server::from));
            // Marker paging rather than `servers_links`: those links carry
            // the host Nova thinks it has, which is wrong behind proxies.
            if n < PAGE {
                return Ok(servers);
            }
            marker = servers.last().map(|s| s.id.clone());
        }
    }

    async fn servers_detail(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<ServerDetail>, CloudError> {
        #[derive(Deserialize)]
        struct Page {
            servers: Vec<RawServerDetail>,
        }
        let base = format!("{}/servers/detail", self.base);
        let page = self.page.to_string();
        marker_pages(
            SERVICE,
            &format!("GET {base}"),
            self.page,
            |s: &ServerDetail| &s.id,
            |marker| {
                let mut query = filters.to_vec();
                query.push(("limit", page.as_str()));
                let marker = marker.unwrap_or_default();
                if !marker.is_empty() {
                    query.push(("marker", &marker));
                }
                let url = with_query(SERVICE, &base, &query);
                async move {
                    let p: Page = self.get(&url?).await?;
                    Ok(p.servers.into_iter().map(ServerDetail::from).collect())
                }
            },
        )
        .await
    }

    async fn server(&self, id: &str) -> Result<Option<ServerDetail>, CloudError> {
        #[derive(Deserialize)]
        struct One {
            server: RawServerDetail,
        }
        match self.get::<One>(&self.server_url(id)).await {
            Ok(one) => Ok(Some(one.server.into())),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn flavors(&self) -> Result<Vec<Flavor>, CloudError> {
        #[derive(Deserialize)]
        struct Page {
            flavors: Vec<Flavor>,
        }
        let base = format!("{}/flavors/detail", self.base);
        let page = self.page.to_string();
        marker_pages(
            SERVICE,
            &format!("GET {base}"),
            self.page,
            |f: &Flavor| &f.id,
            |marker| {
                let mut query = vec![("limit", page.as_str())];
                let marker = marker.unwrap_or_default();
                if !marker.is_empty() {
                    query.push(("marker", &marker));
                }
                let url = with_query(SERVICE, &base, &query);
                async move { Ok(self.get::<Page>(&url?).await?.flavors) }
            },
        )
        .await
    }

    async fn limits(&self) -> Result<Limits, CloudError> {
        #[derive(Deserialize)]
        struct Body {
            limits: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            absolute: RawAbsolute,
        }
        let body: Body = self.get(&format!("{}/limits", self.base)).await?;
        Ok(body.limits.absolute.into())
    }

    async fn create_server(&self, server: &NewServer) -> Result<String, CloudError> {
        server
            .validate()
            .map_err(|p| Self::invalid(format!("server `{}`", server.name), p))?;
        #[derive(Deserialize)]
        struct Created {
            server: IdOnly,
        }
        let url = format!("{}/servers", self.base);
        let body = server.body();
        // The answer may carry `adminPass`: only the id is kept.
        let created: Created = self
            .session
            .json(SERVICE, Method::POST, &url, |r| {
                microversion(r).json(&body).timeout(REQUEST_TIMEOUT)
            })
            .await?;
        Ok(created.server.id)
    }

    async fn console_output(&self, id: &str, lines: Option<u32>) -> Result<String, CloudError> {
        let body = match lines {
            Some(n) => json!({ "os-getConsoleOutput": { "length": n } }),
            None => json!({ "os-getConsoleOutput": {} }),
        };
        let response = self.action(id, &body).await?;
        let out: ConsoleOutput = response.json().await.map_err(|e| CloudError::Protocol {
            service: SERVICE,
            what: format!("os-getConsoleOutput of server {id}"),
            message: super::keystone::error_chain(&e),
        })?;
        Ok(out.output)
    }

    async fn stop_server(&self, id: &str) -> Result<(), CloudError> {
        self.power(id, "os-stop", ServerStatus::Shutoff).await
    }

    async fn start_server(&self, id: &str) -> Result<(), CloudError> {
        self.power(id, "os-start", ServerStatus::Active).await
    }

    async fn create_image(
        &self,
        server_id: &str,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let what = || format!("snapshot `{name}` of server {server_id}");
        check_name(name).map_err(|p| Self::invalid(what(), p))?;
        check_metadata(metadata).map_err(|p| Self::invalid(what(), p))?;
        let body = json!({ "createImage": { "name": name, "metadata": metadata } });
        let response = self.action(server_id, &body).await?;
        let created: ImageId = response.json().await.map_err(|e| CloudError::Protocol {
            service: SERVICE,
            what: format!("createImage of server {server_id}"),
            message: super::keystone::error_chain(&e),
        })?;
        Ok(created.image_id)
    }

    async fn delete_server(&self, id: &str) -> Result<bool, CloudError> {
        match self
            .session
            .send(SERVICE, Method::DELETE, &self.server_url(id), |r| {
                microversion(r).timeout(REQUEST_TIMEOUT)
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn update_server_metadata(
        &self,
        id: &str,
        items: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, CloudError> {
        check_metadata(items).map_err(|p| Self::invalid(format!("metadata of server {id}"), p))?;
        let url = format!("{}/metadata", self.server_url(id));
        let body = json!({ "metadata": items });
        let m: MetadataBody = self
            .session
            .json(SERVICE, Method::POST, &url, |r| {
                microversion(r).json(&body).timeout(REQUEST_TIMEOUT)
            })
            .await?;
        Ok(m.metadata)
    }

    async fn set_server_metadata_item(
        &self,
        id: &str,
        key: &str,
        value: &str,
    ) -> Result<(), CloudError> {
        check_metadata_item(key, value)
            .map_err(|p| Self::invalid(format!("metadata of server {id}"), p))?;
        let url = format!("{}/metadata/{}", self.server_url(id), encode(key));
        let body = json!({ "meta": { key: value } });
        self.session
            .send(SERVICE, Method::PUT, &url, |r| {
                microversion(r).json(&body).timeout(REQUEST_TIMEOUT)
            })
            .await?;
        Ok(())
    }

    async fn delete_server_metadata_item(&self, id: &str, key: &str) -> Result<bool, CloudError> {
        let url = format!("{}/metadata/{}", self.server_url(id), encode(key));
        match self
            .session
            .send(SERVICE, Method::DELETE, &url, |r| {
                microversion(r).timeout(REQUEST_TIMEOUT)
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn add_server_tag(&self, id: &str, tag: &str) -> Result<(), CloudError> {
        check_tag(tag).map_err(|p| Self::invalid(format!("a tag of server {id}"), p))?;
        let url = format!("{}/tags/{}", self.server_url(id), encode(tag));
        self.session
            .send(SERVICE, Method::PUT, &url, |r| {
                microversion(r).timeout(REQUEST_TIMEOUT)
            })
            .await?;
        Ok(())
    }

    async fn remove_server_tag(&self, id: &str, tag: &str) -> Result<(), CloudError> {
        let url = format!("{}/tags/{}", self.server_url(id), encode(tag));
        match self
            .session
            .send(SERVICE, Method::DELETE, &url, |r| {
                microversion(r).timeout(REQUEST_TIMEOUT)
            })
            .await
        {
            Ok(_) => Ok(()),
            // The server lacks the tag, or the server is gone: either way
            // it carries no such tag. A missing server shows on its next
            // read.
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn attach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), CloudError> {
        let url = format!("{}/os-volume_attachments", self.server_url(server_id));
        // No `device`: the guest finds the disk by its serial, and libvirt
        // ignores the name asked for anyway.
        let body = json!({ "volumeAttachment": { "volumeId": volume_id } });
        self.session
            .send(SERVICE, Method::POST, &url, |r| {
                microversion(r).json(&body).timeout(REQUEST_TIMEOUT)
            })
            .await?;
        Ok(())
    }

    async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<bool, CloudError> {
        let url = format!(
            "{}/os-volume_attachments/{}",
            self.server_url(server_id),
            encode(volume_id)
        );
        match self
            .session
            .send(SERVICE, Method::DELETE, &url, |r| {
                microversion(r).timeout(REQUEST_TIMEOUT)
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn volume_attachments(&self, server_id: &str) -> Result<Vec<String>, CloudError> {
        #[derive(Deserialize)]
        struct Body {
            #[serde(rename = "volumeAttachments")]
            attachments: Vec<One>,
        }
        #[derive(Deserialize)]
        struct One {
            #[serde(rename = "volumeId")]
            volume_id: String,
        }
        let url = format!("{}/os-volume_attachments", self.server_url(server_id));
        let body: Body = self.get(&url).await?;
        Ok(body.attachments.into_iter().map(|a| a.volume_id).collect())
    }
}

#[derive(Deserialize)]
struct ConsoleOutput {
    output: String,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct ImageId {
    image_id: String,
}

#[derive(Deserialize)]
struct MetadataBody {
    metadata: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_booted_servers_have_no_image() {
        let r: RawServer = serde_json::from_value(
            json!({"id": "s1", "name": "a", "status": "ACTIVE", "image": ""}),
        )
        .unwrap();
        assert_eq!(Server::from(r).image_id, None);
        let r: RawServer = serde_json::from_value(
            json!({"id": "s2", "name": "b", "status": "ACTIVE", "image": {"id": "i1", "links": []}}),
        )
        .unwrap();
        assert_eq!(Server::from(r).image_id.as_deref(), Some("i1"));
    }

    /// A server as Nova 2.52 shows one whose build failed (trimmed of the
    /// fields ingot does not read, which are ignored).
    fn errored() -> Value {
        json!({"server": {
            "id": "9f1c", "name": "ingot-build-web-7a", "status": "ERROR",
            "tenant_id": "p", "user_id": "u", "hostId": "",
            "metadata": {"ingot_build": "7a"}, "tags": ["ingot-build"],
            "image": {"id": "img-1", "links": [{"rel": "bookmark", "href": "http://n/images/img-1"}]},
            "flavor": {"vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0, "swap": 0,
                       "original_name": "ingot.tiny", "extra_specs": {}},
            "created": "2026-12-01T10:00:00Z", "updated": "2026-12-01T10:00:03Z",
            "addresses": {},
            "OS-EXT-STS:task_state": null, "OS-EXT-STS:vm_state": "error",
            "OS-EXT-STS:power_state": 0, "locked": false,
            "fault": {"code": 500, "created": "2026-12-01T10:00:03Z",
                      "message": "No valid host was found. There are not enough hosts available."}
        }})
    }

    fn detail(v: Value) -> ServerDetail {
        #[derive(Deserialize)]
        struct One {
            server: RawServerDetail,
        }
        serde_json::from_value::<One>(v).unwrap().server.into()
    }

    #[test]
    fn a_server_in_error_carries_its_fault() {
        let s = detail(errored());
        assert_eq!(s.status, ServerStatus::Error);
        assert_eq!(s.power_state, Some(PowerState::NoState));
        assert_eq!(s.task_state, None);
        assert_eq!(
            s.fault,
            Some(Fault {
                code: 500,
                message: "No valid host was found. There are not enough hosts available.".into(),
                details: None,
                created: Some("2026-12-01T10:00:03Z".into()),
            })
        );
        assert_eq!(s.image_id.as_deref(), Some("img-1"));
        assert_eq!(s.flavor, "ingot.tiny");
        assert_eq!(s.metadata["ingot_build"], "7a");
        assert_eq!(s.tags, ["ingot-build"]);
        assert_eq!(s.created, "2026-12-01T10:00:00Z");
    }

    #[test]
    fn an_active_server_with_addresses_and_no_fault() {
        let mut v = errored();
        let s = &mut v["server"];
        s["status"] = json!("ACTIVE");
        s["OS-EXT-STS:power_state"] = json!(1);
        s["OS-EXT-STS:task_state"] = json!("image_uploading");
        s.as_object_mut().unwrap().remove("fault");
        // Below 2.47 the flavor is a link with an id.
        s["flavor"] = json!({"id": "f1", "links": []});
        s["addresses"] = json!({"net": [
            {"version": 4, "addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"},
            {"version": 4, "addr": "203.0.113.9", "OS-EXT-IPS:type": "floating"}
        ]});
        let s = detail(v);
        assert_eq!(s.status, ServerStatus::Active);
        assert_eq!(s.power_state, Some(PowerState::Running));
        assert_eq!(s.task_state.as_deref(), Some("image_uploading"));
        assert_eq!(s.fault, None);
        assert_eq!(s.flavor, "f1");
        let net = &s.addresses["net"];
        assert_eq!(net[1].kind, Some(AddressKind::Floating));
        assert_eq!(net[0].mac.as_deref(), Some("fa:16:3e:00:00:01"));
    }

    #[test]
    fn an_unknown_status_or_power_state_is_an_error_that_names_it() {
        let mut v = errored();
        v["server"]["status"] = json!("SPLENDID");
        #[derive(Deserialize, Debug)]
        struct One {
            #[allow(dead_code)]
            server: RawServerDetail,
        }
        let e = serde_json::from_value::<One>(v).unwrap_err().to_string();
        assert!(
            e.starts_with("unknown server status `SPLENDID`; expected one of: ACTIVE, BUILD"),
            "{e}"
        );
        let mut v = errored();
        v["server"]["OS-EXT-STS:power_state"] = json!(2);
        let e = serde_json::from_value::<One>(v).unwrap_err().to_string();
        assert!(
            e.starts_with("unknown power state 2; expected 0, 1, 3, 4, 6 or 7"),
            "{e}"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in ServerStatus::ALL {
            assert_eq!(s.as_str().parse::<ServerStatus>(), Ok(*s));
        }
        assert_eq!(ServerStatus::Shutoff.to_string(), "SHUTOFF");
        assert_eq!(ServerStatus::ALL.len(), 20);
        for code in 0..10 {
            if let Some(p) = PowerState::from_code(code) {
                assert_eq!(
                    serde_json::from_value::<PowerState>(json!(code)).unwrap(),
                    p
                );
            }
        }
        assert_eq!(PowerState::Shutdown.to_string(), "shutdown");
    }

    #[test]
    fn limits_with_unlimited_quotas() {
        #[derive(Deserialize)]
        struct Body {
            limits: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            absolute: RawAbsolute,
        }
        let b: Body = serde_json::from_value(json!({"limits": {"rate": [], "absolute": {
            "maxServerMeta": 128, "maxPersonality": 5, "maxImageMeta": 128,
            "maxPersonalitySize": 10240, "maxTotalKeypairs": 100,
            "maxServerGroups": 10, "maxServerGroupMembers": 10,
            "maxTotalInstances": 10, "totalInstancesUsed": 3,
            "maxTotalCores": -1, "totalCoresUsed": 3,
            "maxTotalRAMSize": 51200, "totalRAMUsed": 1536,
            "totalServerGroupsUsed": 0
        }}}))
        .unwrap();
        let l = Limits::from(b.limits.absolute);
        assert_eq!(
            l.instances,
            Quota {
                max: Some(10),
                used: 3
            }
        );
        assert_eq!(l.instances.remaining(), Some(7));
        assert_eq!(l.cores, Quota { max: None, used: 3 });
        assert_eq!(l.cores.remaining(), None);
        assert_eq!(l.ram_mb.remaining(), Some(51200 - 1536));
        // Over quota (an operator lowered it): nothing left, not a wrap.
        assert_eq!(Quota::new(2, 5).remaining(), Some(0));
    }

    #[test]
    fn flavors_parse() {
        #[derive(Deserialize)]
        struct Page {
            flavors: Vec<Flavor>,
        }
        let p: Page = serde_json::from_value(json!({"flavors": [
            {"id": "8e15", "name": "ingot.tiny", "ram": 512, "disk": 1, "swap": "",
             "OS-FLV-EXT-DATA:ephemeral": 0, "vcpus": 1, "os-flavor-access:is_public": true,
             "rxtx_factor": 1.0, "links": []},
            {"id": "a4", "name": "a4-ram8-disk0", "ram": 8192, "disk": 0, "vcpus": 4}
        ]}))
        .unwrap();
        assert_eq!(
            p.flavors,
            [
                Flavor {
                    id: "8e15".into(),
                    name: "ingot.tiny".into(),
                    vcpus: 1,
                    ram_mb: 512,
                    disk_gb: 1
                },
                Flavor {
                    id: "a4".into(),
                    name: "a4-ram8-disk0".into(),
                    vcpus: 4,
                    ram_mb: 8192,
                    disk_gb: 0
                },
            ]
        );
    }

    #[test]
    fn console_output_is_the_text_as_sent() {
        let c: ConsoleOutput = serde_json::from_value(
            json!({"output": "FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE\nsystemd \u{fffd} ok\n"}),
        )
        .unwrap();
        assert_eq!(c.output.lines().count(), 4);
        assert!(c.output.contains('\u{fffd}'));
    }

    fn new_server() -> NewServer {
        NewServer {
            name: "ingot-build-web-7a".into(),
            image_id: "img-1".into(),
            flavor_id: "8e15".into(),
            networks: Networks::None,
            user_data: Some(b"#cloud-config\n".to_vec()),
            metadata: [("ingot_build".to_string(), "7a".to_string())].into(),
            tags: vec!["ingot-build".into()],
            security_groups: vec![],
            key_name: None,
        }
    }

    #[test]
    fn the_create_body_is_what_nova_reads() {
        assert_eq!(
            new_server().body(),
            json!({"server": {
                "name": "ingot-build-web-7a", "imageRef": "img-1", "flavorRef": "8e15",
                "networks": "none", "user_data": "I2Nsb3VkLWNvbmZpZwo=",
                "metadata": {"ingot_build": "7a"}, "tags": ["ingot-build"]
            }})
        );
        let mut s = new_server();
        s.networks = Networks::Ids(vec!["n1".into(), "n2".into()]);
        s.security_groups = vec!["ingot-visio".into()];
        s.key_name = Some("ops".into());
        s.user_data = None;
        s.metadata.clear();
        s.tags.clear();
        assert_eq!(
            s.body(),
            json!({"server": {
                "name": "ingot-build-web-7a", "imageRef": "img-1", "flavorRef": "8e15",
                "networks": [{"uuid": "n1"}, {"uuid": "n2"}],
                "security_groups": [{"name": "ingot-visio"}], "key_name": "ops"
            }})
        );
        s.networks = Networks::Auto;
        assert_eq!(s.body()["server"]["networks"], "auto");
    }

    fn refused(change: impl FnOnce(&mut NewServer)) -> String {
        let mut s = new_server();
        change(&mut s);
        let problem = s.validate().unwrap_err();
        Nova::invalid(format!("server `{}`", s.name), problem).to_string()
    }

    #[test]
    fn what_nova_would_refuse_is_said_before_sending() {
        assert_eq!(new_server().validate(), Ok(()));
        assert_eq!(
            refused(|s| s.name = " web".into()),
            "nova: server ` web` would be refused: the name ` web` begins or ends with whitespace"
        );
        assert_eq!(
            refused(|s| s.name = String::new()),
            "nova: server `` would be refused: the name is empty"
        );
        assert_eq!(
            refused(|s| s.name = "n".repeat(256)),
            format!(
                "nova: server `{}` would be refused: the name is 256 characters; at most 255",
                "n".repeat(256)
            )
        );
        assert_eq!(
            refused(|s| {
                s.metadata.insert("ingot/build".into(), "x".into());
            }),
            "nova: server `ingot-build-web-7a` would be refused: metadata key `ingot/build`: expected 1 to 255 letters, digits, spaces or `-_:.`"
        );
        assert_eq!(
            refused(|s| {
                s.metadata.insert(String::new(), "x".into());
            }),
            "nova: server `ingot-build-web-7a` would be refused: metadata key ``: expected 1 to 255 letters, digits, spaces or `-_:.`"
        );
        assert_eq!(
            refused(|s| {
                s.metadata.insert("ingot_digest".into(), "é".repeat(256));
            }),
            "nova: server `ingot-build-web-7a` would be refused: the metadata value of `ingot_digest` is 256 characters; at most 255"
        );
        assert_eq!(
            refused(|s| s.tags.push("a,b".into())),
            "nova: server `ingot-build-web-7a` would be refused: tag `a,b`: expected 1 to 60 characters without `/` or `,`"
        );
        assert_eq!(
            refused(|s| s.tags.push("t".repeat(61))),
            format!("nova: server `ingot-build-web-7a` would be refused: tag `{}`: expected 1 to 60 characters without `/` or `,`", "t".repeat(61))
        );
        assert_eq!(
            refused(|s| s.tags = (0..51).map(|i| format!("t{i}")).collect()),
            "nova: server `ingot-build-web-7a` would be refused: 51 tags; at most 50"
        );
        // 49,149 bytes are 65,532 base64 characters: accepted; 49,152 are
        // 65,536: refused.
        let mut s = new_server();
        s.user_data = Some(vec![0; 49_149]);
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(
            refused(|s| s.user_data = Some(vec![0; 49_152])),
            "nova: server `ingot-build-web-7a` would be refused: the user-data is 49152 bytes, 65536 characters in base64; Nova takes at most 65535 (compress it with gzip, or make it smaller)"
        );
        // Edge values that Nova accepts.
        let mut s = new_server();
        s.metadata.insert("k".repeat(255), "v".repeat(255));
        s.metadata.insert("a-b_c:d. e".into(), String::new());
        s.tags.push("t".repeat(60));
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn invalid_requests_are_input_errors() {
        let e = Nova::invalid("server `x`".into(), Invalid::EmptyName);
        assert!(e.is_input());
        assert!(!e.is_transient());
    }
}
