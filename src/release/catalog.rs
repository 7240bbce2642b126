//! The releases of an image: its Glance images, newest first, with their
//! channels and the servers booted from them.

use super::{ReleaseError, CHANNEL_PREFIX, P_DIGEST, P_IMAGE, P_VERSION};
use crate::cloud::compute::{ComputeService, Server};
use crate::cloud::image::{Image, ImageService, ImageStatus};
use crate::cloud::CloudError;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Release {
    pub id: String,
    pub name: String,
    pub version: String,
    pub digest: String,
    pub created_at: String,
    pub updated_at: String,
    pub size: Option<u64>,
    pub status: ImageStatus,
    pub channels: Vec<String>,
    /// `None` when the cloud has no compute service to ask.
    pub servers: Option<Vec<ServerRef>>,
    pub protected: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerRef {
    pub id: String,
    pub name: String,
    pub status: String,
}

impl Release {
    pub fn short_digest(&self) -> &str {
        crate::manifest::short_digest(&self.digest)
    }

    /// `2026.1.0 (6847e2d3e395)`, how lists name a release.
    pub fn label(&self) -> String {
        format!("{} ({})", self.version, self.short_digest())
    }

    pub fn in_use(&self) -> bool {
        self.servers.as_ref().is_some_and(|s| !s.is_empty())
    }

    fn created(&self) -> i64 {
        crate::cloud::time::parse_utc(&self.created_at).unwrap_or(0)
    }

    pub fn updated(&self) -> i64 {
        crate::cloud::time::parse_utc(&self.updated_at).unwrap_or(0)
    }
}

/// Glance images of `image` → releases, newest first (ties by id, so the
/// order is stable).
pub fn releases(images: Vec<Image>, servers: Option<&[Server]>) -> Vec<Release> {
    let mut out: Vec<Release> = images
        .into_iter()
        .map(|i| {
            // Glance keeps tags as a set: sort them for a stable output.
            let mut channels: Vec<String> = i
                .tags
                .iter()
                .filter_map(|t| t.strip_prefix(CHANNEL_PREFIX).map(str::to_string))
                .collect();
            channels.sort();
            let users = servers.map(|all| {
                all.iter()
                    .filter(|s| s.image_id.as_deref() == Some(i.id.as_str()))
                    .map(|s| ServerRef {
                        id: s.id.clone(),
                        name: s.name.clone(),
                        status: s.status.clone(),
                    })
                    .collect()
            });
            Release {
                version: i.property(P_VERSION).unwrap_or("?").to_string(),
                digest: i.property(P_DIGEST).unwrap_or("?").to_string(),
                name: i.name.clone().unwrap_or_default(),
                created_at: i.created_at.clone(),
                updated_at: i.updated_at.clone().unwrap_or_else(|| i.created_at.clone()),
                size: i.size,
                status: i.status,
                protected: i.protected,
                channels,
                servers: users,
                id: i.id,
            }
        })
        .collect();
    out.sort_by(|a, b| b.created().cmp(&a.created()).then_with(|| a.id.cmp(&b.id)));
    out
}

/// The Glance images of `image` owned by `owner` (the token's project: an
/// image shared by another project is not ours to promote or prune).
pub async fn images_of<S: ImageService>(
    glance: &S,
    image: &str,
    owner: Option<&str>,
) -> Result<Vec<Image>, CloudError> {
    let mut filters: Vec<(&str, &str)> = vec![(P_IMAGE, image)];
    if let Some(o) = owner {
        filters.push(("owner", o));
    }
    glance.list(&filters).await
}

/// Releases with their servers. With no compute service in the catalog
/// the servers are unknown (`None`), which `prune` refuses to guess about.
pub async fn fetch<S: ImageService, C: ComputeService>(
    glance: &S,
    nova: Option<&C>,
    image: &str,
    owner: Option<&str>,
) -> Result<Vec<Release>, ReleaseError> {
    let images = images_of(glance, image, owner).await?;
    let servers = match nova {
        Some(n) => Some(n.servers().await?),
        None => None,
    };
    Ok(releases(images, servers.as_deref()))
}

/// The one release `selector` names: a Glance id, a digest (or a prefix of
/// at least 6 hex digits, with or without `sha256:`), or a version that
/// only one release has.
pub fn select<'a>(
    image: &str,
    releases: &'a [Release],
    selector: &str,
) -> Result<&'a Release, ReleaseError> {
    if let Some(r) = releases.iter().find(|r| r.id == selector) {
        return Ok(r);
    }
    let by_version: Vec<&Release> = releases.iter().filter(|r| r.version == selector).collect();
    let hex = selector.strip_prefix("sha256:").unwrap_or(selector);
    let by_digest: Vec<&Release> = if hex.len() >= 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        releases
            .iter()
            .filter(|r| {
                r.digest
                    .strip_prefix("sha256:")
                    .unwrap_or(&r.digest)
                    .starts_with(hex)
            })
            .collect()
    } else {
        vec![]
    };
    let matches = if by_version.is_empty() {
        by_digest
    } else {
        by_version
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ReleaseError::NoRelease {
            image: image.to_string(),
            selector: selector.to_string(),
            available: releases.iter().map(Release::label).collect(),
        }),
        many => Err(ReleaseError::Ambiguous {
            image: image.to_string(),
            selector: selector.to_string(),
            candidates: many
                .iter()
                .map(|r| format!("{} id {} {}", r.label(), r.id, r.created_at))
                .collect(),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn image(
        id: &str,
        version: &str,
        digest: &str,
        created: &str,
        tags: &[&str],
    ) -> Image {
        serde_json::from_value(json!({
            "id": id, "name": format!("web-{version}"), "status": "active", "size": 100,
            "created_at": created, "tags": tags, "visibility": "private",
            "ingot_image": "web", "ingot_version": version, "ingot_digest": format!("sha256:{digest}"),
        }))
        .unwrap()
    }

    fn server(id: &str, image: &str) -> Server {
        Server {
            id: id.into(),
            name: format!("srv-{id}"),
            status: "ACTIVE".into(),
            image_id: Some(image.into()),
        }
    }

    #[test]
    fn newest_first_with_channels_and_servers() {
        let images = vec![
            image(
                "a",
                "1",
                "aaaaaaaaaaaa11",
                "2026-01-01T00:00:00Z",
                &["ingot"],
            ),
            image(
                "b",
                "2",
                "bbbbbbbbbbbb22",
                "2026-02-01T00:00:00Z",
                &["ingot", "channel:stable"],
            ),
        ];
        let servers = [server("s1", "a")];
        let r = releases(images, Some(&servers));
        assert_eq!(r[0].id, "b");
        assert_eq!(r[0].channels, ["stable"]);
        assert!(!r[0].in_use());
        assert_eq!(r[1].servers.as_ref().unwrap()[0].name, "srv-s1");
        assert_eq!(r[1].label(), "1 (aaaaaaaaaaaa)");
    }

    #[test]
    fn selectors() {
        let r = releases(
            vec![
                image("id-1", "1.0", "abcdef000000aa", "2026-01-01T00:00:00Z", &[]),
                image("id-2", "1.0", "abcdef111111bb", "2026-01-02T00:00:00Z", &[]),
                image("id-3", "2.0", "99999999999999", "2026-01-03T00:00:00Z", &[]),
            ],
            None,
        );
        assert_eq!(select("web", &r, "2.0").unwrap().id, "id-3");
        assert_eq!(select("web", &r, "id-1").unwrap().id, "id-1");
        assert_eq!(select("web", &r, "abcdef1").unwrap().id, "id-2");
        assert_eq!(select("web", &r, "sha256:abcdef0").unwrap().id, "id-1");
        assert_eq!(
            select("web", &r, "1.0").unwrap_err().to_string(),
            "image web: `1.0` matches 2 releases: 1.0 (abcdef111111) id id-2 2026-01-02T00:00:00Z, 1.0 (abcdef000000) id id-1 2026-01-01T00:00:00Z; name one by its digest or id"
        );
        assert_eq!(
            select("web", &r, "3.0").unwrap_err().to_string(),
            "image web has no release `3.0`; it has: 2.0 (999999999999), 1.0 (abcdef111111), 1.0 (abcdef000000)"
        );
    }
}
