//! The image service (Glance v2): one trait, one HTTP implementation.

use super::enums::string_enum;
use super::keystone::error_chain;
use super::request::encode;
use super::{CloudError, Session};
use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

string_enum! {
    /// Where an image is in its life, as Glance names it.
    pub enum ImageStatus("image status") {
        /// A record without data yet.
        Queued = "queued",
        /// Data is being uploaded (the plain `PUT .../file`).
        Saving = "saving",
        /// Data is being staged for the import API.
        Uploading = "uploading",
        /// The import API is moving staged data to the store.
        Importing = "importing",
        Active = "active",
        /// An upload failed; the record has no usable data.
        Killed = "killed",
        Deleted = "deleted",
        PendingDelete = "pending_delete",
        /// Disabled by an operator: its data cannot be downloaded.
        Deactivated = "deactivated",
    }
}

impl ImageStatus {
    /// An upload that has not finished (or failed): `queued`, `saving`,
    /// `uploading`, `importing`, `killed`.
    pub fn is_unfinished(self) -> bool {
        matches!(
            self,
            ImageStatus::Queued
                | ImageStatus::Saving
                | ImageStatus::Uploading
                | ImageStatus::Importing
                | ImageStatus::Killed
        )
    }

    /// Data is on its way in: `saving`, `uploading`, `importing`.
    pub fn is_receiving(self) -> bool {
        matches!(
            self,
            ImageStatus::Saving | ImageStatus::Uploading | ImageStatus::Importing
        )
    }
}

/// An image record as Glance returns it. Properties that are not core
/// fields (ours, `os_distro`, `hw_*`, SCS-0102) are in `properties`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Image {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub status: ImageStatus,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub virtual_size: Option<u64>,
    #[serde(default)]
    pub os_hash_algo: Option<String>,
    #[serde(default)]
    pub os_hash_value: Option<String>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub visibility: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub protected: bool,
    #[serde(flatten)]
    pub properties: BTreeMap<String, Value>,
}

impl Image {
    /// A string property (Glance stores extra properties as strings).
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(Value::as_str)
    }
}

/// What `create` sends: core fields and string properties.
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    pub name: String,
    pub disk_format: String,
    pub container_format: String,
    pub visibility: String,
    pub min_disk: Option<u64>,
    pub min_ram: Option<u64>,
    pub properties: BTreeMap<String, String>,
    pub tags: Vec<String>,
}

impl NewImage {
    fn body(&self) -> Value {
        let mut o = Map::new();
        o.insert("name".into(), json!(self.name));
        o.insert("disk_format".into(), json!(self.disk_format));
        o.insert("container_format".into(), json!(self.container_format));
        o.insert("visibility".into(), json!(self.visibility));
        if let Some(d) = self.min_disk {
            o.insert("min_disk".into(), json!(d));
        }
        if let Some(r) = self.min_ram {
            o.insert("min_ram".into(), json!(r));
        }
        if !self.tags.is_empty() {
            o.insert("tags".into(), json!(self.tags));
        }
        for (k, v) in &self.properties {
            o.insert(k.clone(), json!(v));
        }
        Value::Object(o)
    }
}

/// One change to an image's properties, as a JSON-patch operation
/// (Glance's `application/openstack-images-v2.1-json-patch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagePatch {
    /// Sets a property that may or may not exist yet.
    Add { key: String, value: String },
    /// Changes a property that exists; Glance refuses it for one that
    /// does not.
    Replace { key: String, value: String },
    /// Removes a property that exists; Glance refuses it for one that
    /// does not.
    Remove { key: String },
    /// Sets a core field that holds a number (`min_ram`, `min_disk`).
    Number { key: String, value: u64 },
}

impl ImagePatch {
    pub fn add(key: &str, value: &str) -> Self {
        ImagePatch::Add {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn replace(key: &str, value: &str) -> Self {
        ImagePatch::Replace {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn remove(key: &str) -> Self {
        ImagePatch::Remove { key: key.into() }
    }

    pub fn number(key: &str, value: u64) -> Self {
        ImagePatch::Number {
            key: key.into(),
            value,
        }
    }

    fn op(&self) -> Value {
        match self {
            ImagePatch::Add { key, value } => {
                json!({"op": "add", "path": pointer(key), "value": value})
            }
            ImagePatch::Replace { key, value } => {
                json!({"op": "replace", "path": pointer(key), "value": value})
            }
            ImagePatch::Remove { key } => json!({"op": "remove", "path": pointer(key)}),
            // `replace` on a core field: it always exists.
            ImagePatch::Number { key, value } => {
                json!({"op": "replace", "path": pointer(key), "value": value})
            }
        }
    }
}

/// The JSON pointer of a top-level property (RFC 6901: `~` and `/` are
/// escaped).
fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// The image data, as a stream of chunks, with its length.
pub struct ImageData {
    pub stream: Pin<Box<dyn futures_core::Stream<Item = std::io::Result<Bytes>> + Send>>,
    pub len: u64,
}

// `async fn` in a public trait hides the futures' `Send`-ness; ingot drives
// these futures on one current-thread runtime, so that costs nothing.
#[allow(async_fn_in_trait)]
pub trait ImageService {
    /// Creates a `queued` image record.
    async fn create(&self, image: &NewImage) -> Result<Image, CloudError>;
    /// Sends the data of a `queued` image; it becomes `active`.
    async fn upload(&self, id: &str, data: ImageData) -> Result<(), CloudError>;
    /// The image, or `None` if it does not exist (any more).
    async fn get(&self, id: &str) -> Result<Option<Image>, CloudError>;
    /// Every image matching the filters (`name=value` query pairs), all pages.
    async fn list(&self, filters: &[(&str, &str)]) -> Result<Vec<Image>, CloudError>;
    /// Applies the changes in one request, all or none, and returns the
    /// record as it is afterwards. Not retried (a PATCH): after a lost
    /// answer, read the image to see whether it happened.
    async fn update(&self, id: &str, patch: &[ImagePatch]) -> Result<Image, CloudError>;
    /// The image's data as it streams from Glance, with its length, for
    /// hashing on the way without writing it to disk. Errors while
    /// streaming arrive as the stream's `Err` items; there is no overall
    /// time limit, so a caller that wants one watches the stream.
    async fn download(&self, id: &str) -> Result<ImageData, CloudError>;
    async fn add_tag(&self, id: &str, tag: &str) -> Result<(), CloudError>;
    async fn remove_tag(&self, id: &str, tag: &str) -> Result<(), CloudError>;
    /// Deletes the image; `false` if it was already gone.
    async fn delete(&self, id: &str) -> Result<bool, CloudError>;
}

pub struct Glance<'a> {
    session: &'a Session,
    /// `.../v2`
    base: String,
    /// The endpoint root that `next` links are relative to.
    root: String,
}

const SERVICE: &str = "glance";
const PAGE: &str = "200";
const PATCH_TYPE: &str = "application/openstack-images-v2.1-json-patch";
/// Small requests only; uploads have no overall limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

impl<'a> Glance<'a> {
    /// Glance at `url`, with or without its `/v2`.
    pub fn new(session: &'a Session, url: &str) -> Self {
        let url = url.trim_end_matches('/');
        let root = url.strip_suffix("/v2").unwrap_or(url).to_string();
        Glance {
            session,
            base: format!("{root}/v2"),
            root,
        }
    }

    /// Glance as the session's catalog (or override) names it.
    pub async fn from_session(session: &'a Session) -> Result<Self, CloudError> {
        let url = session.endpoint("image").await?;
        Ok(Glance::new(session, &url))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn image_url(&self, id: &str) -> String {
        format!("{}/images/{id}", self.base)
    }
}

fn protocol(what: String, e: impl std::error::Error) -> CloudError {
    CloudError::Protocol {
        service: SERVICE,
        what,
        message: error_chain(&e),
    }
}

impl ImageService for Glance<'_> {
    async fn create(&self, image: &NewImage) -> Result<Image, CloudError> {
        let url = format!("{}/images", self.base);
        let body = image.body();
        self.session
            .json(SERVICE, Method::POST, &url, |r| {
                r.json(&body).timeout(REQUEST_TIMEOUT)
            })
            .await
    }

    async fn upload(&self, id: &str, data: ImageData) -> Result<(), CloudError> {
        let url = format!("{}/file", self.image_url(id));
        // The stream can be sent once: no retry here. A 401 has made the
        // session forget its token; the caller's next attempt gets a new one.
        let body = reqwest::Body::wrap_stream(data.stream);
        self.session
            .send_once(SERVICE, Method::PUT, &url, |r| {
                r.header("Content-Type", "application/octet-stream")
                    .header("Content-Length", data.len)
                    .body(body)
            })
            .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Image>, CloudError> {
        let url = self.image_url(id);
        match self
            .session
            .json(SERVICE, Method::GET, &url, |r| r.timeout(REQUEST_TIMEOUT))
            .await
        {
            Ok(image) => Ok(Some(image)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, filters: &[(&str, &str)]) -> Result<Vec<Image>, CloudError> {
        #[derive(Deserialize)]
        struct Page {
            images: Vec<Image>,
            #[serde(default)]
            next: Option<String>,
        }
        let mut query: Vec<(&str, &str)> = filters.to_vec();
        query.push(("limit", PAGE));
        let first = reqwest::Url::parse_with_params(&format!("{}/images", self.base), &query)
            .map_err(|e| protocol(format!("the URL of {}/images", self.base), e))?;
        let mut url = first.to_string();
        let mut images = Vec::new();
        loop {
            let page: Page = self
                .session
                .json(SERVICE, Method::GET, &url, |r| r.timeout(REQUEST_TIMEOUT))
                .await?;
            images.extend(page.images);
            match page.next {
                Some(next) if !next.is_empty() => url = format!("{}{next}", self.root),
                _ => return Ok(images),
            }
        }
    }

    async fn update(&self, id: &str, patch: &[ImagePatch]) -> Result<Image, CloudError> {
        let url = self.image_url(id);
        let ops: Vec<Value> = patch.iter().map(ImagePatch::op).collect();
        let body = serde_json::to_vec(&ops).map_err(|e| protocol(format!("PATCH {url}"), e))?;
        self.session
            .json(SERVICE, Method::PATCH, &url, |r| {
                r.header("Content-Type", PATCH_TYPE)
                    .body(body.clone())
                    .timeout(REQUEST_TIMEOUT)
            })
            .await
    }

    async fn download(&self, id: &str) -> Result<ImageData, CloudError> {
        let url = format!("{}/file", self.image_url(id));
        // Retried until the answer starts (a GET); not once data flows.
        let response = self.session.send(SERVICE, Method::GET, &url, |r| r).await?;
        let no_data = |message: String| CloudError::Protocol {
            service: SERVICE,
            what: format!("GET {url}"),
            message,
        };
        // 204: the record has no data (yet), e.g. a snapshot still queued.
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Err(no_data(
                "no data (HTTP 204): the image has no data yet".into(),
            ));
        }
        let len = response
            .content_length()
            .ok_or_else(|| no_data("no Content-Length".into()))?;
        Ok(ImageData {
            stream: Box::pin(ChunkStream(Box::pin(response.bytes_stream()))),
            len,
        })
    }

    async fn add_tag(&self, id: &str, tag: &str) -> Result<(), CloudError> {
        let url = format!("{}/tags/{}", self.image_url(id), encode(tag));
        self.session
            .send(SERVICE, Method::PUT, &url, |r| r.timeout(REQUEST_TIMEOUT))
            .await?;
        Ok(())
    }

    async fn remove_tag(&self, id: &str, tag: &str) -> Result<(), CloudError> {
        let url = format!("{}/tags/{}", self.image_url(id), encode(tag));
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

    async fn delete(&self, id: &str) -> Result<bool, CloudError> {
        let url = self.image_url(id);
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

/// A response body as `io::Result` chunks, the item type [`ImageData`]
/// carries both ways.
struct ChunkStream<S>(Pin<Box<S>>);

impl<S> futures_core::Stream for ChunkStream<S>
where
    S: futures_core::Stream<Item = reqwest::Result<Bytes>>,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0
            .as_mut()
            .poll_next(cx)
            .map(|o| o.map(|r| r.map_err(|e| std::io::Error::other(error_chain(&e)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_image_body_is_flat() {
        let mut properties = BTreeMap::new();
        properties.insert("os_distro".to_string(), "debian".to_string());
        let n = NewImage {
            name: "web".into(),
            disk_format: "qcow2".into(),
            container_format: "bare".into(),
            visibility: "private".into(),
            min_disk: Some(3),
            min_ram: None,
            properties,
            tags: vec!["ingot".into()],
        };
        assert_eq!(
            n.body(),
            json!({"name": "web", "disk_format": "qcow2", "container_format": "bare",
                "visibility": "private", "min_disk": 3, "tags": ["ingot"], "os_distro": "debian"})
        );
    }

    #[test]
    fn image_keeps_extra_properties() {
        let i: Image = serde_json::from_value(json!({
            "id": "1", "name": "n", "status": "active", "size": 10, "created_at": "t",
            "tags": ["a"], "visibility": "private", "ingot_version": "1.0", "file": "/v2/images/1/file"
        }))
        .unwrap();
        assert_eq!(i.property("ingot_version"), Some("1.0"));
        assert_eq!(i.tags, ["a"]);
    }

    #[test]
    fn statuses_round_trip_and_unknown_ones_are_named() {
        let all: Vec<&str> = ImageStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            all,
            [
                "queued",
                "saving",
                "uploading",
                "importing",
                "active",
                "killed",
                "deleted",
                "pending_delete",
                "deactivated"
            ]
        );
        for s in ImageStatus::ALL {
            assert_eq!(s.to_string().parse::<ImageStatus>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        let e = serde_json::from_value::<Image>(json!({"id": "1", "status": "melted"}))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown image status `melted`; expected one of: queued, saving, uploading, importing, active, killed, deleted, pending_delete, deactivated"
        );
    }

    #[test]
    fn unfinished_and_receiving_are_the_statuses_publish_waits_on() {
        let pick = |f: fn(ImageStatus) -> bool| -> Vec<&str> {
            ImageStatus::ALL
                .iter()
                .filter(|s| f(**s))
                .map(|s| s.as_str())
                .collect()
        };
        assert_eq!(
            pick(ImageStatus::is_unfinished),
            ["queued", "saving", "uploading", "importing", "killed"]
        );
        assert_eq!(
            pick(ImageStatus::is_receiving),
            ["saving", "uploading", "importing"]
        );
    }

    #[test]
    fn patches_are_json_patch_operations() {
        let ops: Vec<Value> = [
            ImagePatch::add("ingot_channel", "stable"),
            ImagePatch::replace("os_version", "12"),
            ImagePatch::remove("a/b~c"),
        ]
        .iter()
        .map(ImagePatch::op)
        .collect();
        assert_eq!(
            Value::Array(ops),
            json!([
                {"op": "add", "path": "/ingot_channel", "value": "stable"},
                {"op": "replace", "path": "/os_version", "value": "12"},
                {"op": "remove", "path": "/a~1b~0c"}
            ])
        );
    }
}
