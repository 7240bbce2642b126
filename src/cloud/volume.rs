//! The block storage service (Cinder v3): volumes (a deployment's data
//! volume, found by its metadata), their snapshots (backups) and the
//! project's limits. One trait, one HTTP implementation, at the catalog's
//! `block-storage` endpoint (`volumev3` on clouds that predate that name).
//!
//! Cinder's changes are asynchronous: a create answers at once with status
//! `creating`; callers poll [`VolumeService::volume`] (or use
//! [`wait_volume`]). Creates are POSTs and are not retried: after a lost
//! answer, find the volume by its metadata. Attaching a volume to a server
//! is Nova's business (`compute::ComputeService::attach_volume`): Nova
//! drives Cinder's attachment API itself.
//!
//! Volumes have no tags; ingot marks the ones it owns by their metadata
//! (`ingot_deployment`, `ingot_kind`), which the list filters by.

use super::enums::string_enum;
use super::error::Invalid;
use super::request::{encode, marker_pages, with_query};
use super::{CloudError, Session};
use reqwest::{Method, RequestBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The block storage microversion ingot speaks: 3.0, the base of v3.
/// Everything used here (metadata filters, snapshots of volumes in use with
/// `force`, attachments in a volume's body) is in it, so any Cinder v3
/// answers; 3.66 (which drops `force`) would exclude clouds older than
/// Xena (2021), like the field journal's.
pub const MICROVERSION: &str = "3.0";

fn microversion(r: RequestBuilder) -> RequestBuilder {
    r.header("OpenStack-API-Version", format!("volume {MICROVERSION}"))
}

string_enum! {
    /// A volume's status (Cinder's `volume.status`).
    pub enum VolumeStatus("volume status") {
        Creating = "creating",
        Available = "available",
        Reserved = "reserved",
        Attaching = "attaching",
        Detaching = "detaching",
        InUse = "in-use",
        Maintenance = "maintenance",
        Deleting = "deleting",
        AwaitingTransfer = "awaiting-transfer",
        Error = "error",
        ErrorDeleting = "error_deleting",
        BackingUp = "backing-up",
        RestoringBackup = "restoring-backup",
        ErrorBackingUp = "error_backing-up",
        ErrorRestoring = "error_restoring",
        ErrorExtending = "error_extending",
        ErrorManaging = "error_managing",
        Downloading = "downloading",
        Uploading = "uploading",
        Retyping = "retyping",
        Extending = "extending",
        Managing = "managing",
    }
}

impl VolumeStatus {
    /// A status no wait leaves by itself: the volume needs a person.
    pub fn is_error(self) -> bool {
        self.as_str().starts_with("error")
    }
}

string_enum! {
    /// A snapshot's status.
    pub enum SnapshotStatus("snapshot status") {
        Creating = "creating",
        Available = "available",
        BackingUp = "backing-up",
        Deleting = "deleting",
        Deleted = "deleted",
        Error = "error",
        ErrorDeleting = "error_deleting",
        Restoring = "restoring",
        Unmanaging = "unmanaging",
    }
}

/// Where a volume is attached.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Attachment {
    pub server_id: String,
    #[serde(default)]
    pub attachment_id: Option<String>,
    /// The device name Nova asked for (`/dev/vdb`): a hint, never what
    /// the guest is told to use (it finds the disk by its serial).
    #[serde(default)]
    pub device: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub id: String,
    pub name: String,
    pub status: VolumeStatus,
    pub size_gb: u64,
    pub metadata: BTreeMap<String, String>,
    pub attachments: Vec<Attachment>,
    pub bootable: bool,
    pub volume_type: Option<String>,
    pub availability_zone: Option<String>,
    /// `2026-12-04T02:38:45.000000` (Cinder's own form, no zone: UTC).
    pub created_at: String,
}

impl Volume {
    /// The servers it is attached to.
    pub fn servers(&self) -> Vec<&str> {
        self.attachments
            .iter()
            .map(|a| a.server_id.as_str())
            .collect()
    }
}

#[derive(Deserialize)]
struct RawVolume {
    id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    name: String,
    status: VolumeStatus,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    /// `"true"` / `"false"`: Cinder spells this boolean as a string.
    #[serde(default)]
    bootable: Value,
    #[serde(default)]
    volume_type: Option<String>,
    #[serde(default)]
    availability_zone: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    created_at: String,
}

impl From<RawVolume> for Volume {
    fn from(r: RawVolume) -> Self {
        Volume {
            bootable: matches!(&r.bootable, Value::Bool(true))
                || r.bootable.as_str() == Some("true"),
            id: r.id,
            name: r.name,
            status: r.status,
            size_gb: r.size,
            metadata: r.metadata,
            attachments: r.attachments,
            volume_type: r.volume_type,
            availability_zone: r.availability_zone,
            created_at: r.created_at,
        }
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Snapshot {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub name: String,
    pub status: SnapshotStatus,
    pub volume_id: String,
    #[serde(rename = "size", default)]
    pub size_gb: u64,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub created_at: String,
}

/// What `create_volume` sends. At most one of `snapshot_id` and
/// `image_id`: the volume starts as a copy of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewVolume {
    pub name: String,
    pub size_gb: u64,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub snapshot_id: Option<String>,
    pub image_id: Option<String>,
    pub volume_type: Option<String>,
    pub availability_zone: Option<String>,
}

impl NewVolume {
    /// What Cinder would refuse, said before anything is sent.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_name(&self.name)?;
        check_metadata(&self.metadata)?;
        if self.size_gb == 0 {
            return Err(Invalid::VolumeSize);
        }
        if self.snapshot_id.is_some() && self.image_id.is_some() {
            return Err(Invalid::VolumeSources);
        }
        Ok(())
    }

    fn body(&self) -> Value {
        let mut o = Map::new();
        o.insert("name".into(), json!(self.name));
        o.insert("size".into(), json!(self.size_gb));
        for (key, value) in [
            ("description", &self.description),
            ("snapshot_id", &self.snapshot_id),
            ("imageRef", &self.image_id),
            ("volume_type", &self.volume_type),
            ("availability_zone", &self.availability_zone),
        ] {
            if let Some(v) = value {
                o.insert(key.into(), json!(v));
            }
        }
        if !self.metadata.is_empty() {
            o.insert("metadata".into(), json!(self.metadata));
        }
        json!({ "volume": o })
    }
}

/// Cinder's names: at most 255 characters (empty is allowed by Cinder,
/// never by ingot: a volume is found by people by its name).
fn check_name(name: &str) -> Result<(), Invalid> {
    let len = name.chars().count();
    if len == 0 {
        return Err(Invalid::EmptyName);
    }
    if len > 255 {
        return Err(Invalid::NameTooLong { len });
    }
    Ok(())
}

/// Cinder's metadata: keys of 1 to 255 characters, values up to 255.
/// ingot's own keys are plain; a key with `/` could not be deleted by URL.
fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), Invalid> {
    for (key, value) in metadata {
        let key_ok = (1..=255).contains(&key.chars().count()) && !key.contains('/');
        if !key_ok {
            return Err(Invalid::MetadataKey { key: key.clone() });
        }
        let len = value.chars().count();
        if len > 255 {
            return Err(Invalid::MetadataValue {
                key: key.clone(),
                len,
            });
        }
    }
    Ok(())
}

/// The project's block storage limits, from `GET /limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VolumeLimits {
    pub volumes: super::compute::Quota,
    pub gigabytes: super::compute::Quota,
    pub snapshots: super::compute::Quota,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAbsolute {
    max_total_volumes: i64,
    #[serde(default)]
    total_volumes_used: i64,
    max_total_volume_gigabytes: i64,
    #[serde(default)]
    total_gigabytes_used: i64,
    max_total_snapshots: i64,
    #[serde(default)]
    total_snapshots_used: i64,
}

// As for the other services: one current-thread runtime drives these.
#[allow(async_fn_in_trait)]
pub trait VolumeService {
    /// Every volume whose metadata holds all of `metadata`, all pages.
    async fn volumes(&self, metadata: &BTreeMap<String, String>)
        -> Result<Vec<Volume>, CloudError>;
    /// The volume, or `None` if it does not exist (any more).
    async fn volume(&self, id: &str) -> Result<Option<Volume>, CloudError>;
    /// Creates a volume and returns its id; it starts `creating`. Checked
    /// with [`NewVolume::validate`] first. Not retried.
    async fn create_volume(&self, volume: &NewVolume) -> Result<String, CloudError>;
    /// Deletes the volume (asynchronously); `false` if it was gone.
    async fn delete_volume(&self, id: &str) -> Result<bool, CloudError>;
    /// Sets these metadata items, keeping the others.
    async fn update_volume_metadata(
        &self,
        id: &str,
        items: &BTreeMap<String, String>,
    ) -> Result<(), CloudError>;
    /// Every snapshot whose metadata holds all of `metadata`, all pages.
    async fn snapshots(
        &self,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Vec<Snapshot>, CloudError>;
    async fn snapshot(&self, id: &str) -> Result<Option<Snapshot>, CloudError>;
    /// Snapshots a volume, attached or not (`force`: a volume in use is
    /// snapshotted as its disk is, crash-consistent). Not retried.
    async fn create_snapshot(
        &self,
        volume_id: &str,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<String, CloudError>;
    async fn delete_snapshot(&self, id: &str) -> Result<bool, CloudError>;
    async fn volume_limits(&self) -> Result<VolumeLimits, CloudError>;
}

pub struct Cinder<'a> {
    session: &'a Session,
    base: String,
    page: usize,
}

const SERVICE: &str = "cinder";
const PAGE: usize = 500;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

impl<'a> Cinder<'a> {
    pub fn new(session: &'a Session, url: &str) -> Self {
        Cinder {
            session,
            base: url.trim_end_matches('/').to_string(),
            page: PAGE,
        }
    }

    /// At the catalog's `block-storage` endpoint, else `volumev3` (the
    /// name clouds used before 2020; many public ones still have only it).
    pub async fn from_session(session: &'a Session) -> Result<Self, CloudError> {
        let url = match session.endpoint("block-storage").await {
            Ok(url) => url,
            Err(first @ CloudError::NoEndpoint { .. }) => {
                match session.endpoint("volumev3").await {
                    Ok(url) => url,
                    Err(CloudError::NoEndpoint { .. }) => return Err(first),
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        Ok(Cinder::new(session, &url))
    }

    /// Smaller pages (tests cross page boundaries with few items).
    pub fn with_page_size(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, CloudError> {
        self.session
            .json(SERVICE, Method::GET, url, |r| {
                microversion(r).timeout(REQUEST_TIMEOUT)
            })
            .await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        body: &Value,
    ) -> Result<T, CloudError> {
        self.session
            .json(SERVICE, Method::POST, url, |r| {
                microversion(r).json(body).timeout(REQUEST_TIMEOUT)
            })
            .await
    }

    async fn delete(&self, url: &str) -> Result<bool, CloudError> {
        match self
            .session
            .send(SERVICE, Method::DELETE, url, |r| {
                microversion(r).timeout(REQUEST_TIMEOUT)
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
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

    /// A paged `detail` listing filtered by metadata (`?metadata={json}`,
    /// which Cinder matches item by item).
    async fn listing<T, R>(
        &self,
        path: &str,
        metadata: &BTreeMap<String, String>,
        id: impl Fn(&T) -> &str,
        items: impl Fn(R) -> Vec<T>,
    ) -> Result<Vec<T>, CloudError>
    where
        R: serde::de::DeserializeOwned,
    {
        let base = format!("{}/{path}/detail", self.base);
        let page = self.page.to_string();
        let filter = if metadata.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(metadata).map_err(|e| CloudError::Protocol {
                    service: SERVICE,
                    what: format!("the metadata filter of {base}"),
                    message: e.to_string(),
                })?,
            )
        };
        let items = &items;
        marker_pages(SERVICE, &format!("GET {base}"), self.page, id, |marker| {
            let mut query = vec![("limit", page.as_str())];
            if let Some(f) = &filter {
                query.push(("metadata", f.as_str()));
            }
            let marker = marker.unwrap_or_default();
            if !marker.is_empty() {
                query.push(("marker", &marker));
            }
            let url = with_query(SERVICE, &base, &query);
            async move { Ok(items(self.get::<R>(&url?).await?)) }
        })
        .await
    }
}

impl VolumeService for Cinder<'_> {
    async fn volumes(
        &self,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Vec<Volume>, CloudError> {
        #[derive(Deserialize)]
        struct Page {
            volumes: Vec<RawVolume>,
        }
        let all = self
            .listing(
                "volumes",
                metadata,
                |v: &Volume| &v.id,
                |p: Page| p.volumes.into_iter().map(Volume::from).collect(),
            )
            .await?;
        // Filtered again here: a cloud whose policy ignores the filter
        // must not hand another deployment's volume to this one.
        Ok(all
            .into_iter()
            .filter(|v| metadata.iter().all(|(k, x)| v.metadata.get(k) == Some(x)))
            .collect())
    }

    async fn volume(&self, id: &str) -> Result<Option<Volume>, CloudError> {
        #[derive(Deserialize)]
        struct One {
            volume: RawVolume,
        }
        let url = format!("{}/volumes/{}", self.base, encode(id));
        match self.get::<One>(&url).await {
            Ok(one) => Ok(Some(one.volume.into())),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_volume(&self, volume: &NewVolume) -> Result<String, CloudError> {
        volume
            .validate()
            .map_err(|p| Self::invalid(format!("volume `{}`", volume.name), p))?;
        #[derive(Deserialize)]
        struct Created {
            volume: IdOnly,
        }
        let created: Created = self
            .post(&format!("{}/volumes", self.base), &volume.body())
            .await?;
        Ok(created.volume.id)
    }

    async fn delete_volume(&self, id: &str) -> Result<bool, CloudError> {
        self.delete(&format!("{}/volumes/{}", self.base, encode(id)))
            .await
    }

    async fn update_volume_metadata(
        &self,
        id: &str,
        items: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        check_metadata(items).map_err(|p| Self::invalid(format!("metadata of volume {id}"), p))?;
        let url = format!("{}/volumes/{}/metadata", self.base, encode(id));
        let _: Value = self.post(&url, &json!({ "metadata": items })).await?;
        Ok(())
    }

    async fn snapshots(
        &self,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Vec<Snapshot>, CloudError> {
        #[derive(Deserialize)]
        struct Page {
            snapshots: Vec<Snapshot>,
        }
        let all = self
            .listing(
                "snapshots",
                metadata,
                |s: &Snapshot| &s.id,
                |p: Page| p.snapshots,
            )
            .await?;
        Ok(all
            .into_iter()
            .filter(|s| metadata.iter().all(|(k, x)| s.metadata.get(k) == Some(x)))
            .collect())
    }

    async fn snapshot(&self, id: &str) -> Result<Option<Snapshot>, CloudError> {
        #[derive(Deserialize)]
        struct One {
            snapshot: Snapshot,
        }
        let url = format!("{}/snapshots/{}", self.base, encode(id));
        match self.get::<One>(&url).await {
            Ok(one) => Ok(Some(one.snapshot)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_snapshot(
        &self,
        volume_id: &str,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let what = || format!("snapshot `{name}` of volume {volume_id}");
        check_name(name).map_err(|p| Self::invalid(what(), p))?;
        check_metadata(metadata).map_err(|p| Self::invalid(what(), p))?;
        #[derive(Deserialize)]
        struct Created {
            snapshot: IdOnly,
        }
        let body = json!({ "snapshot": {
            "volume_id": volume_id, "name": name, "metadata": metadata, "force": true,
        }});
        let created: Created = self
            .post(&format!("{}/snapshots", self.base), &body)
            .await?;
        Ok(created.snapshot.id)
    }

    async fn delete_snapshot(&self, id: &str) -> Result<bool, CloudError> {
        self.delete(&format!("{}/snapshots/{}", self.base, encode(id)))
            .await
    }

    async fn volume_limits(&self) -> Result<VolumeLimits, CloudError> {
        use super::compute::Quota;
        #[derive(Deserialize)]
        struct Body {
            limits: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            absolute: RawAbsolute,
        }
        let body: Body = self.get(&format!("{}/limits", self.base)).await?;
        let a = body.limits.absolute;
        Ok(VolumeLimits {
            volumes: Quota::new(a.max_total_volumes, a.total_volumes_used),
            gigabytes: Quota::new(a.max_total_volume_gigabytes, a.total_gigabytes_used),
            snapshots: Quota::new(a.max_total_snapshots, a.total_snapshots_used),
        })
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

/// Why [`wait_volume`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("volume {id} is gone")]
    Gone { id: String },
    #[error("volume {id} is in status {status}, which it does not leave by itself")]
    Failed { id: String, status: VolumeStatus },
    #[error("volume {id} is still {status} after {waited} s (waited for {want})")]
    Timeout {
        id: String,
        status: VolumeStatus,
        want: String,
        waited: u64,
    },
}

/// Polls the volume until `done` holds, failing at once on an error
/// status or a volume gone, and after `limit`.
pub async fn wait_volume<V: VolumeService>(
    cinder: &V,
    id: &str,
    want: &str,
    limit: Duration,
    done: impl Fn(&Volume) -> bool,
) -> Result<Volume, WaitError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        let Some(v) = cinder.volume(id).await? else {
            return Err(WaitError::Gone { id: id.into() });
        };
        if done(&v) {
            return Ok(v);
        }
        if v.status.is_error() {
            return Err(WaitError::Failed {
                id: id.into(),
                status: v.status,
            });
        }
        if start.elapsed() >= limit {
            return Err(WaitError::Timeout {
                id: id.into(),
                status: v.status,
                want: want.into(),
                waited: start.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_read_as_cinder_writes_it() {
        let raw: RawVolume = serde_json::from_value(json!({
            "id": "0e94", "name": null, "status": "in-use", "size": 2,
            "metadata": {"ingot_deployment": "visio"}, "bootable": "false",
            "attachments": [{"server_id": "s1", "attachment_id": "a1", "device": "/dev/vdb",
                             "id": "0e94", "volume_id": "0e94", "host_name": null}],
            "volume_type": "__DEFAULT__", "created_at": "2026-12-04T02:38:45.000000"
        }))
        .unwrap();
        let v = Volume::from(raw);
        assert_eq!(v.status, VolumeStatus::InUse);
        assert_eq!(v.name, "");
        assert_eq!(v.servers(), ["s1"]);
        assert!(!v.bootable);
        assert_eq!(v.size_gb, 2);
    }

    #[test]
    fn what_cinder_would_refuse_is_said_first() {
        let ok = NewVolume {
            name: "ingot-visio-state".into(),
            size_gb: 10,
            ..NewVolume::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let zero = NewVolume {
            size_gb: 0,
            ..ok.clone()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "the size is 0 GB; at least 1"
        );
        let both = NewVolume {
            snapshot_id: Some("s".into()),
            image_id: Some("i".into()),
            ..ok.clone()
        };
        assert_eq!(
            both.validate().unwrap_err().to_string(),
            "a volume is made from a snapshot or from an image, not both"
        );
        let mut bad = ok.clone();
        bad.metadata.insert("a/b".into(), "x".into());
        assert!(bad.validate().is_err());
        assert!(VolumeStatus::ErrorExtending.is_error());
        assert!(!VolumeStatus::InUse.is_error());
    }

    #[test]
    fn the_create_body_carries_only_what_was_given() {
        let v = NewVolume {
            name: "ingot-visio-state".into(),
            size_gb: 10,
            metadata: [("ingot_kind".to_string(), "state".to_string())].into(),
            ..NewVolume::default()
        };
        assert_eq!(
            v.body(),
            json!({"volume": {"name": "ingot-visio-state", "size": 10,
                              "metadata": {"ingot_kind": "state"}}})
        );
    }
}
