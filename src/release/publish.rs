//! `ingot publish`: an artifact becomes an active, verified Glance image,
//! once. The image record is created `queued` with every property, the
//! file is streamed while a reader thread hashes it, and the result is
//! checked against Glance's own `os_hash_value` (sha512) and size. Anything
//! that fails after the record exists (upload errors after their retries,
//! a mismatch, Ctrl-C) deletes it, exactly once, and the error says so.

use super::stream::{self, Hashes};
use super::{properties, Cleanup, ReleaseError, P_DIGEST, TAG};
use crate::artifact::{qcow2_virtual_size, Artifact};
use crate::cloud::image::{Image, ImageData, ImageService, ImageStatus};
use crate::cloud::retry::Retry;
use crate::cloud::CloudError;
use crate::manifest::ImageFile;
use crate::progress::Progress;
use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct PublishOptions {
    pub visibility: String,
    /// The token's project: only its images count as already published.
    pub owner: Option<String>,
    pub retry: Retry,
    /// An unfinished image of the same digest older than this is a
    /// leftover of a killed run and is deleted; a younger one is a publish
    /// in progress, and this one stops.
    pub stale_after: Duration,
    /// An upload that sends nothing for this long is cut and retried.
    pub stall_after: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            visibility: "private".into(),
            owner: None,
            retry: Retry::default(),
            stale_after: Duration::from_secs(15 * 60),
            stall_after: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Published {
    pub image: Image,
    /// Already published: found by its input digest, nothing uploaded.
    pub reused: bool,
    /// Leftovers of killed runs that were deleted on the way.
    pub removed: Vec<String>,
    pub attempts: u32,
    pub bytes: u64,
    pub upload_seconds: f64,
}

impl Published {
    pub fn mib_per_second(&self) -> f64 {
        if self.upload_seconds > 0.0 {
            self.bytes as f64 / (1024.0 * 1024.0) / self.upload_seconds
        } else {
            0.0
        }
    }
}

/// The local image file of the artifact being published.
struct Upload<'a> {
    artifact: &'a Artifact,
    path: std::path::PathBuf,
    file: &'a ImageFile,
}

impl<'a> Upload<'a> {
    fn new(artifact: &'a Artifact) -> Result<Self, ReleaseError> {
        Ok(Upload {
            artifact,
            path: artifact.image_path()?,
            file: artifact.file()?,
        })
    }
}

pub async fn publish<S: ImageService>(
    glance: &S,
    a: &Artifact,
    opts: &PublishOptions,
    progress: &Progress,
    cancel: impl Future<Output = ()>,
) -> Result<Published, ReleaseError> {
    // Polled now rather than first in the select below: tokio installs its
    // Ctrl-C handler on the first poll, and until then a Ctrl-C kills the
    // process outright, also while the create request is in flight, which
    // leaves the record Glance creates anyway `queued`.
    let mut cancel = std::pin::pin!(cancel);
    if fired(cancel.as_mut()) {
        return Err(ReleaseError::Cancelled {
            cleanup: Cleanup::Nothing,
        });
    }
    let artifact = a;
    let a = &Upload::new(artifact)?;
    let mut filters: Vec<(&str, &str)> =
        vec![(P_DIGEST, a.artifact.manifest.input_digest.as_str())];
    if let Some(o) = &opts.owner {
        filters.push(("owner", o.as_str()));
    }
    let same = glance.list(&filters).await?;
    let mut removed = Vec::new();
    for image in &same {
        if image.status == ImageStatus::Active {
            progress.say(&format!(
                "{} {} is already published as image {} ({}): nothing to upload",
                a.artifact.manifest.image.name,
                a.artifact.manifest.image.version,
                image.id,
                image.name.as_deref().unwrap_or("")
            ));
            if !image.tags.iter().any(|t| t == TAG) {
                glance.add_tag(&image.id, TAG).await?;
            }
            return Ok(Published {
                image: image.clone(),
                reused: true,
                removed,
                attempts: 0,
                bytes: 0,
                upload_seconds: 0.0,
            });
        }
    }
    // Only records of an upload that never finished; a `deactivated` image
    // was disabled on purpose by an operator and is left alone.
    for image in same.iter().filter(|i| i.status.is_unfinished()) {
        let updated = image.updated_at.as_deref().unwrap_or(&image.created_at);
        let age = crate::cloud::time::parse_utc(updated)
            .map(|t| crate::cloud::time::now() - t)
            .unwrap_or(i64::MAX);
        if age < opts.stale_after.as_secs() as i64 {
            return Err(ReleaseError::InProgress {
                digest: a.artifact.manifest.input_digest.clone(),
                id: image.id.clone(),
                status: image.status.to_string(),
                since: updated.to_string(),
            });
        }
        progress.say(&format!(
            "deleting image {} (`{}` since {updated}), left by an interrupted publish",
            image.id, image.status
        ));
        glance.delete(&image.id).await?;
        removed.push(image.id.clone());
    }

    let virtual_size = qcow2_virtual_size(&a.path).map_err(|e| ReleaseError::Artifact {
        path: a.path.clone(),
        message: e.to_string(),
    })?;
    let built_at = artifact
        .build()?
        .built_at()
        .unwrap_or_else(|| mtime(&artifact.manifest_path()));
    let record = properties::new_image(
        &artifact.manifest,
        artifact.build()?,
        &opts.visibility,
        built_at,
        virtual_size,
    )?;
    if fired(cancel.as_mut()) {
        return Err(ReleaseError::Cancelled {
            cleanup: Cleanup::Nothing,
        });
    }
    progress.say(&format!(
        "creating image {} ({} properties)",
        record.name,
        record.properties.len()
    ));
    let created = glance.create(&record).await?;
    progress.say(&format!(
        "image {} created, status {}",
        created.id, created.status
    ));

    // The id of the record this run owns, if any: the upload may replace a
    // record Glance gave up on, and cleanup must delete the current one.
    let owned = RefCell::new(Some(created.id.clone()));
    let attempts = std::cell::Cell::new(0u32);
    let started = Instant::now();
    let outcome = tokio::select! {
        r = upload_and_verify(glance, a, opts, progress, &owned, &attempts, &record) => r,
        _ = cancel.as_mut() => Err(ReleaseError::Cancelled { cleanup: Cleanup::Nothing }),
    };
    let upload_seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(image) => Ok(Published {
            image,
            reused: false,
            removed,
            attempts: attempts.get(),
            bytes: a.file.bytes,
            upload_seconds,
        }),
        Err(e) => {
            let id = owned.borrow_mut().take();
            let cleanup = cleanup(glance, id, progress).await;
            Err(match e {
                ReleaseError::Cancelled { .. } => ReleaseError::Cancelled { cleanup },
                other => ReleaseError::Upload {
                    name: record.name.clone(),
                    attempts: attempts.get(),
                    source: Box::new(other),
                    cleanup,
                },
            })
        }
    }
}

/// Whether `cancel` has completed, without waiting for it.
fn fired<F: Future>(cancel: std::pin::Pin<&mut F>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    cancel.poll(&mut cx).is_ready()
}

async fn cleanup<S: ImageService>(glance: &S, id: Option<String>, progress: &Progress) -> Cleanup {
    let Some(id) = id else {
        return Cleanup::Nothing;
    };
    progress.say(&format!("deleting the unfinished image {id}"));
    // Bounded: a second Ctrl-C or a dead Glance must not hang the exit.
    match tokio::time::timeout(Duration::from_secs(60), glance.delete(&id)).await {
        Ok(Ok(_)) => Cleanup::Deleted { id },
        Ok(Err(error)) => Cleanup::Failed {
            id,
            error: Box::new(error),
        },
        Err(_) => Cleanup::Failed {
            id,
            error: Box::new(CloudError::Protocol {
                service: "glance",
                what: "DELETE".into(),
                message: "no answer within 60 s".into(),
            }),
        },
    }
}

/// Retried part: send the data, then check what Glance stored.
async fn upload_and_verify<S: ImageService>(
    glance: &S,
    a: &Upload<'_>,
    opts: &PublishOptions,
    progress: &Progress,
    owned: &RefCell<Option<String>>,
    attempts: &std::cell::Cell<u32>,
    record: &crate::cloud::image::NewImage,
) -> Result<Image, ReleaseError> {
    let transient = |e: &ReleaseError| match e {
        // A 401 made the session forget its token: the next attempt
        // authenticates again.
        ReleaseError::Cloud(c) => c.is_transient() || c.status() == Some(401),
        _ => false,
    };
    let hashes = opts
        .retry
        .run(
            |attempt| async move {
                attempts.set(attempt);
                let id = owned.borrow().clone().unwrap_or_default();
                let id = if attempt > 1 {
                    match ready_for_data(glance, &id, record).await? {
                        Ready::Queued(id) => id,
                        Ready::Replaced(new) => {
                            progress.say(&format!(
                                "Glance gave up on image {id}; uploading to a new record {new}"
                            ));
                            *owned.borrow_mut() = Some(new.clone());
                            new
                        }
                        // The data arrived although the answer was lost.
                        Ready::Active => return Ok(None),
                    }
                } else {
                    id
                };
                send(glance, &id, a, opts, progress).await.map(Some)
            },
            transient,
            |e, next| {
                progress.say(&format!(
                    "upload failed: {e}; attempt {next} of {}",
                    opts.retry.attempts
                ))
            },
        )
        .await?;
    let id = owned.borrow().clone().unwrap_or_default();
    let hashes = match hashes {
        Some(h) => h,
        None => hash_file(a).await?,
    };
    verify(glance, &id, a, &hashes).await
}

enum Ready {
    Queued(String),
    Replaced(String),
    Active,
}

/// After a failed attempt: where is the record now? `queued` takes the
/// data again; `saving` is waited for (Glance is still winding down the
/// cut upload); anything else (`killed`, gone) is replaced by a new record.
async fn ready_for_data<S: ImageService>(
    glance: &S,
    id: &str,
    record: &crate::cloud::image::NewImage,
) -> Result<Ready, ReleaseError> {
    for _ in 0..60 {
        match glance.get(id).await? {
            Some(i) if i.status == ImageStatus::Queued => return Ok(Ready::Queued(id.to_string())),
            Some(i) if i.status == ImageStatus::Active => return Ok(Ready::Active),
            Some(i) if i.status.is_receiving() => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(_) => {
                glance.delete(id).await?;
                return Ok(Ready::Replaced(glance.create(record).await?.id));
            }
            None => return Ok(Ready::Replaced(glance.create(record).await?.id)),
        }
    }
    Err(ReleaseError::NotActive {
        id: id.to_string(),
        status: "saving".into(),
    })
}

/// One upload, with a progress line every few seconds and a stall cut.
async fn send<S: ImageService>(
    glance: &S,
    id: &str,
    a: &Upload<'_>,
    opts: &PublishOptions,
    progress: &Progress,
) -> Result<Hashes, ReleaseError> {
    let sent = Arc::new(AtomicU64::new(0));
    let (file, hashes) =
        stream::open(&a.path, sent.clone()).map_err(|e| ReleaseError::Artifact {
            path: a.path.clone(),
            message: e.to_string(),
        })?;
    let upload = glance.upload(
        id,
        ImageData {
            stream: Box::pin(file),
            len: a.file.bytes,
        },
    );
    let mut upload = std::pin::pin!(upload);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let (mut last, mut last_change) = (0u64, Instant::now());
    loop {
        tokio::select! {
            r = &mut upload => { r?; break; }
            _ = tick.tick() => {
                let now = sent.load(Ordering::Relaxed);
                if now != last {
                    (last, last_change) = (now, Instant::now());
                } else if last_change.elapsed() >= opts.stall_after {
                    return Err(ReleaseError::Cloud(CloudError::Transport {
                        service: "glance",
                        method: "PUT".into(),
                        url: format!("image {id} file"),
                        message: format!("nothing sent for {} s", opts.stall_after.as_secs()),
                    }));
                }
                progress.bytes("uploading", now, Some(a.file.bytes), started);
            }
        }
    }
    progress.bytes("uploading", a.file.bytes, Some(a.file.bytes), started);
    hashes.await.map_err(|_| ReleaseError::Artifact {
        path: a.path.clone(),
        message: "was not read to its end during the upload".into(),
    })
}

async fn hash_file(a: &Upload<'_>) -> Result<Hashes, ReleaseError> {
    let (mut s, done) =
        stream::open(&a.path, Arc::new(AtomicU64::new(0))).map_err(|e| ReleaseError::Artifact {
            path: a.path.clone(),
            message: e.to_string(),
        })?;
    while std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut s), cx))
        .await
        .is_some()
    {}
    done.await.map_err(|_| ReleaseError::Artifact {
        path: a.path.clone(),
        message: "could not be read to its end".into(),
    })
}

/// What Glance stored is what this run sent, and what the build wrote.
async fn verify<S: ImageService>(
    glance: &S,
    id: &str,
    a: &Upload<'_>,
    h: &Hashes,
) -> Result<Image, ReleaseError> {
    let image = glance
        .get(id)
        .await?
        .ok_or_else(|| ReleaseError::NotActive {
            id: id.to_string(),
            status: "deleted".into(),
        })?;
    if image.status != ImageStatus::Active {
        return Err(ReleaseError::NotActive {
            id: id.to_string(),
            status: image.status.to_string(),
        });
    }
    let mismatch = |what, theirs: String, ours: String| ReleaseError::Mismatch {
        id: id.to_string(),
        what,
        theirs,
        ours,
    };
    if h.sha256 != a.file.sha256 {
        return Err(mismatch(
            "artifact sha256 (the file changed since it was built)",
            a.file.sha256.clone(),
            h.sha256.clone(),
        ));
    }
    match (
        image.os_hash_algo.as_deref(),
        image.os_hash_value.as_deref(),
    ) {
        (Some("sha512"), Some(v)) if v == h.sha512 => {}
        (Some("sha512"), v) => {
            return Err(mismatch(
                "sha512",
                v.unwrap_or("nothing").to_string(),
                h.sha512.clone(),
            ))
        }
        (algo, _) => {
            tracing::warn!(
                ?algo,
                "Glance does not hash with sha512: only the size is compared"
            );
        }
    }
    if image.size != Some(h.bytes) {
        return Err(mismatch(
            "size",
            image
                .size
                .map(|s| s.to_string())
                .unwrap_or_else(|| "nothing".into()),
            h.bytes.to_string(),
        ));
    }
    Ok(image)
}

fn mtime(path: &std::path::Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or_else(crate::cloud::time::now)
}
