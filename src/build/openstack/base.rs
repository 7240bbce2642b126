//! The base image of a cloud build, in Glance: an image the image file
//! names (by name, id or properties, e.g. the provider's own Debian 12),
//! checked active and of the declared distro; or the local base (a
//! verified download, or one built from Debian's archive) uploaded once and
//! found again by its sha256 — never uploaded twice.

use super::journal::{Entry, Journal, Kind};
use super::{M_BUILD, P_STATE, STATE_BUILDING};
use crate::base::{BaseImage, Cache};
use crate::build::BuildError;
use crate::cloud::image::{Image, ImageData, ImagePatch, ImageService, ImageStatus, NewImage};
use crate::manifest::Manifest;
use crate::model::BaseSource;
use crate::progress::Progress;
use crate::release::{P_BASE_SOURCE, TAG};
use std::path::Path;
use std::time::Instant;

/// Tag of base images ingot uploaded.
pub const BASE_TAG: &str = "ingot-base";
/// The sha256 of an uploaded base's own bytes. Not `ingot_base_sha256`:
/// every release built on that base carries that one.
pub const P_UPLOADED: &str = "ingot_base_image_sha256";

/// A base image the builds can boot, or one still to upload.
#[derive(Debug, Clone)]
pub struct ResolvedBase {
    /// The Glance image id; empty until a local base is uploaded.
    pub id: String,
    /// How people name it in progress lines.
    pub label: String,
    /// For the manifest: `glance:<id>`, or the local base's source.
    pub source: String,
    pub sha256: Option<String>,
    /// Glance's `os_hash_value`, when it hashes with sha512.
    pub sha512: Option<String>,
    pub disk_format: String,
    pub min_disk_gb: u64,
    pub virtual_size: Option<u64>,
    /// A local base that is not in Glance yet.
    pub upload: Option<BaseImage>,
    /// Spent resolving, obtaining and uploading it.
    pub seconds: f64,
}

/// Why a base cannot serve, worded for the preflight report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseProblem(pub String);

/// Finds the image's base in Glance, or obtains the local base and finds
/// its upload by sha256. Creates nothing in the cloud.
pub async fn resolve_base<I: ImageService>(
    glance: &I,
    m: &Manifest,
    cache: &Cache,
    progress: &Progress,
) -> Result<Result<ResolvedBase, BaseProblem>, BuildError> {
    let started = Instant::now();
    let source = &m.image.base;
    let found = match source {
        BaseSource::Glance {
            name,
            id,
            properties,
        } => {
            let candidates: Vec<Image> = match (name, id) {
                (_, Some(id)) => glance.get(id).await?.into_iter().collect(),
                (Some(name), None) => glance.list(&[("name", name.as_str())]).await?,
                (None, None) => {
                    let filters: Vec<(&str, &str)> = properties
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    glance.list(&filters).await?
                }
            };
            let Some(image) = newest_active(candidates.clone()) else {
                return Ok(Err(BaseProblem(match candidates.first() {
                    Some(i) => format!(
                        "base {}: image {} is `{}`, not active",
                        source.label(),
                        i.id,
                        i.status
                    ),
                    None => format!("base {}: no such image in Glance", source.label()),
                })));
            };
            if let Err(p) = check_distro(m, &image, progress) {
                return Ok(Err(p));
            }
            resolved(&image, source.label(), None, started)
        }
        BaseSource::Url { .. } | BaseSource::Build { .. } => {
            let local = cache.obtain(m.image.distro, source, progress).await?;
            let mut found = glance
                .list(&[(P_UPLOADED, local.sha256.as_str()), ("tag", BASE_TAG)])
                .await?;
            found.retain(|i| i.property(P_STATE).is_none());
            match newest_active(found) {
                Some(image) => {
                    progress.say(&format!(
                        "base {} is in Glance as image {} (sha256 {})",
                        local.source, image.id, local.sha256
                    ));
                    let mut r = resolved(
                        &image,
                        local.source.clone(),
                        Some(local.sha256.clone()),
                        started,
                    );
                    r.source = local.source.clone();
                    r
                }
                None => ResolvedBase {
                    id: String::new(),
                    label: local.source.clone(),
                    source: local.source.clone(),
                    sha256: Some(local.sha256.clone()),
                    sha512: None,
                    disk_format: local.format.clone(),
                    min_disk_gb: 0,
                    virtual_size: virtual_size(&local.disk()),
                    upload: Some(local),
                    seconds: started.elapsed().as_secs_f64(),
                },
            }
        }
    };
    Ok(Ok(found))
}

fn resolved(
    image: &Image,
    label: String,
    sha256: Option<String>,
    started: Instant,
) -> ResolvedBase {
    ResolvedBase {
        id: image.id.clone(),
        label: if label.contains(&image.id) {
            label
        } else {
            format!("{label} ({})", image.id)
        },
        source: format!("glance:{}", image.id),
        sha256: sha256.or_else(|| image.property(P_UPLOADED).map(str::to_string)),
        sha512: match image.os_hash_algo.as_deref() {
            Some("sha512") => image.os_hash_value.clone(),
            _ => None,
        },
        disk_format: image.property("disk_format").unwrap_or("qcow2").to_string(),
        min_disk_gb: image
            .properties
            .get("min_disk")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        virtual_size: image.virtual_size,
        upload: None,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn newest_active(mut images: Vec<Image>) -> Option<Image> {
    images.retain(|i| i.status == ImageStatus::Active);
    images.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    images.into_iter().next()
}

/// A base of another distro would bake an image that says it is what it
/// is not; a base that does not say is taken at its word, with a warning.
fn check_distro(m: &Manifest, image: &Image, progress: &Progress) -> Result<(), BaseProblem> {
    let want = (m.image.os_distro.as_str(), m.image.os_version.as_str());
    match (image.property("os_distro"), image.property("os_version")) {
        (Some(d), Some(v)) if d == want.0 && v == want.1 => Ok(()),
        (Some(d), v) if d != want.0 || v.is_some_and(|v| v != want.1) => Err(BaseProblem(format!(
            "base image {} is os_distro={d} os_version={}, the image file declares {} ({} {})",
            image.id,
            v.unwrap_or("?"),
            m.image.distro.name(),
            want.0,
            want.1
        ))),
        _ => {
            progress.say(&format!(
                "warning: base image {} does not say its distro (os_distro/os_version); taking it as {}",
                image.id,
                m.image.distro.name()
            ));
            Ok(())
        }
    }
}

fn virtual_size(path: &Path) -> Option<u64> {
    crate::artifact::qcow2_virtual_size(path)
        .ok()
        .flatten()
        .or_else(|| std::fs::metadata(path).ok().map(|m| m.len()))
}

/// Uploads a local base once: created `ingot_state: building`, streamed,
/// checked against Glance's sha512, then made usable. A failure deletes
/// the record; a kill leaves it to `gc` (journaled, and marked building).
pub async fn upload<I: ImageService>(
    glance: &I,
    base: &mut ResolvedBase,
    m: &Manifest,
    state: &Path,
    cloud: &str,
    progress: &Progress,
) -> Result<(), BuildError> {
    let Some(local) = base.upload.take() else {
        return Ok(());
    };
    let started = Instant::now();
    let id = super::build_id();
    let journal =
        Journal::create(state, &format!("base-{id}"), "base", cloud).map_err(|source| {
            BuildError::Journal {
                path: state.join("builds"),
                source,
            }
        })?;
    let record_err = |source| BuildError::Journal {
        path: journal.path().to_path_buf(),
        source,
    };
    let name = format!(
        "ingot-base-{}-{}",
        m.image.distro.name(),
        crate::manifest::short_digest(&local.sha256)
    );
    let record = NewImage {
        name: name.clone(),
        disk_format: local.format.clone(),
        container_format: "bare".into(),
        visibility: "private".into(),
        min_disk: None,
        min_ram: None,
        properties: [
            (P_UPLOADED, local.sha256.clone()),
            (P_BASE_SOURCE, local.source.clone()),
            ("os_distro", m.image.os_distro.clone()),
            ("os_version", m.image.os_version.clone()),
            (M_BUILD, format!("base-{id}")),
            (P_STATE, STATE_BUILDING.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        tags: vec![TAG.to_string(), BASE_TAG.to_string()],
    };
    journal
        .record(&Entry::Creating {
            kind: Kind::Image,
            name: name.clone(),
            at: crate::cloud::time::now(),
        })
        .map_err(record_err)?;
    let created = glance.create(&record).await?;
    journal
        .record(&Entry::Created {
            kind: Kind::Image,
            name: name.clone(),
            id: created.id.clone(),
            at: crate::cloud::time::now(),
        })
        .map_err(record_err)?;
    progress.say(&format!(
        "uploading base {} to Glance as {name} ({})",
        local.source, created.id
    ));
    let outcome = async {
        let path = local.disk();
        let len = std::fs::metadata(&path)
            .map_err(|source| BuildError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        let (stream, hashes) =
            crate::release::open_stream(&path).map_err(|source| BuildError::Io {
                path: path.clone(),
                source,
            })?;
        glance
            .upload(
                &created.id,
                ImageData {
                    stream: Box::pin(stream),
                    len,
                },
            )
            .await?;
        let hashes = hashes.await.map_err(|_| BuildError::Io {
            path: path.clone(),
            source: std::io::Error::other("was not read to its end during the upload"),
        })?;
        let image = glance.get(&created.id).await?;
        let image = match image {
            Some(i) if i.status == ImageStatus::Active => i,
            other => {
                return Err(BuildError::Snapshot {
                    image: name.clone(),
                    id: created.id.clone(),
                    status: other
                        .map(|i| i.status.to_string())
                        .unwrap_or_else(|| "deleted".into()),
                })
            }
        };
        if image
            .os_hash_value
            .as_deref()
            .is_some_and(|v| v != hashes.sha512)
        {
            return Err(BuildError::SnapshotMismatch {
                id: created.id.clone(),
                what: "sha512",
                theirs: image.os_hash_value.clone().unwrap_or_default(),
                ours: hashes.sha512.clone(),
            });
        }
        glance
            .update(
                &created.id,
                &[ImagePatch::remove(P_STATE), ImagePatch::remove(M_BUILD)],
            )
            .await?;
        Ok::<_, BuildError>(image)
    }
    .await;
    match outcome {
        Ok(image) => {
            let _ = journal.record(&Entry::Released {
                id: created.id.clone(),
                at: crate::cloud::time::now(),
            });
            journal.close();
            let label = base.label.clone();
            let source = base.source.clone();
            *base = resolved(&image, label, base.sha256.clone(), started);
            base.source = source;
            base.seconds += started.elapsed().as_secs_f64();
            Ok(())
        }
        Err(e) => {
            if glance.delete(&created.id).await.is_ok() {
                let _ = journal.record(&Entry::Deleted {
                    kind: Kind::Image,
                    id: created.id.clone(),
                    at: crate::cloud::time::now(),
                });
                journal.close();
            }
            Err(e)
        }
    }
}
