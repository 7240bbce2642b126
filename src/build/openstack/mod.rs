//! The cloud builder: each image is baked in a temporary server of its own
//! and its snapshot becomes the release, so a CI runner only orchestrates.
//!
//! One build, in order:
//! 1. the journal records the build, then each resource before its create;
//! 2. a server `ingot-build-<image>-<build id>` boots the base image with
//!    the bake user-data, tagged `ingot`, `ingot-build` and carrying the
//!    build id in its metadata. No key pair, no SSH, no floating IP: the
//!    console ([`crate::protocol`], read through `os-getConsoleOutput`) says
//!    how the bake went, through the same gate as the QEMU builder;
//! 3. the sealed guest powers itself off (or is stopped once the settle
//!    time is over); `createImage` snapshots it, marked `ingot_state:
//!    building`; the snapshot must become `active` **before** the server is
//!    deleted;
//! 4. the snapshot's bytes are hashed as Glance serves them (sha512 must be
//!    Glance's `os_hash_value`); then one PATCH gives it the release's
//!    properties — the same record `ingot publish` creates — and removes
//!    `ingot_state`, which makes it a release.
//!
//! Whatever happens after the journal exists — a failure, a terminal
//! state, Ctrl-C — the server and an unfinished snapshot are deleted once,
//! and the error says what was deleted or left. What a SIGKILL leaves, `ingot
//! gc` finds by the tags, the metadata and the journal.

pub mod base;
pub mod console;
pub mod gc;
pub mod journal;
pub mod preflight;

pub use base::{resolve_base, BaseProblem, ResolvedBase};

use super::gate::{self, BakeVerdict, Ending};
use super::BuildError;
use crate::cloud::compute::{ComputeService, Networks, NewServer, ServerStatus};
use crate::cloud::image::{ImagePatch, ImageService, ImageStatus};
use crate::cloud::CloudError;
use crate::manifest::{BaseRecord, BuildRecord, BuilderKind, GlanceImage, Manifest, Seconds};
use crate::progress::Progress;
use crate::release::{properties, P_DIGEST, TAG};
use crate::render::Rendered;
use console::{fault_text, ServerGuest};
use journal::{Entry, Journal, Kind};
use preflight::Choice;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Server tag of every build server; with `ingot`, what `gc` looks for.
pub const BUILD_TAG: &str = "ingot-build";
/// Server metadata and snapshot property: the build that made it.
pub const M_BUILD: &str = "ingot_build";
/// Snapshot property while it is not a release yet.
pub const P_STATE: &str = "ingot_state";
/// Server metadata and snapshot property: the Unix time until which the
/// build that made it may still be running (its deadlines added up). `gc`
/// on another runner leaves a leased resource alone; only the local journal
/// can prove the build dead sooner.
pub const M_LEASE: &str = "ingot_build_lease";
pub const STATE_BUILDING: &str = "building";

/// How long a sealed guest may take to power off.
const STOP_DEADLINE: Duration = Duration::from_secs(300);
/// How long a deleted build server may take to go.
const DELETE_DEADLINE: Duration = Duration::from_secs(120);

/// Properties Nova gives a snapshot that describe the build server, not
/// the image: a release does not carry them (a published one never has).
const SNAPSHOT_BOOKKEEPING: &[&str] = &[
    "instance_uuid",
    "base_image_ref",
    "image_type",
    "image_location",
    "image_state",
    "owner_id",
    "owner_user_name",
    "owner_project_name",
    "user_id",
    "boot_roles",
    "bdm_v2",
    "block_device_mapping",
    "root_device_name",
    "clean_attempts",
    M_BUILD,
    M_LEASE,
    P_STATE,
];

pub struct OpenStackOptions {
    pub timeout: Duration,
    pub allow_degraded: bool,
    pub poll: Duration,
    /// Glance visibility of a new release.
    pub visibility: String,
    /// The token's project: only its images count as released.
    pub owner: Option<String>,
    /// Where the journal lives.
    pub state: PathBuf,
    /// The cloud's identity in the journal (Keystone URL and project).
    pub cloud: String,
    /// How long a snapshot may take to become active.
    pub snapshot_timeout: Duration,
    /// Build even when these inputs are released: the new release is kept
    /// beside the older one.
    pub force: bool,
}

/// One image to build, once the preflight passed.
pub struct Job {
    pub rendered: Rendered,
    pub base: ResolvedBase,
}

/// A finished cloud build.
#[derive(Debug, Clone)]
pub struct Released {
    pub image: crate::cloud::image::Image,
    pub manifest: Manifest,
    /// Already released: found by its input digest, nothing built.
    pub reused: bool,
    pub cleanup: Cleanup,
}

/// What the cleanup of a build did, resource by resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub deleted: Vec<(Kind, String)>,
    /// `(kind, id, why it could not be deleted)`
    pub left: Vec<(Kind, String, String)>,
}

impl Cleanup {
    pub fn is_clean(&self) -> bool {
        self.left.is_empty()
    }
}

impl fmt::Display for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.deleted.is_empty() && self.left.is_empty() {
            return write!(f, "nothing was left in the cloud");
        }
        let deleted: Vec<String> = self
            .deleted
            .iter()
            .map(|(k, id)| format!("{} {id}", k.name()))
            .collect();
        if !deleted.is_empty() {
            write!(f, "deleted {}", deleted.join(", "))?;
        }
        if !self.left.is_empty() {
            if !deleted.is_empty() {
                write!(f, "; ")?;
            }
            let left: Vec<String> = self
                .left
                .iter()
                .map(|(k, id, why)| format!("{} {id} ({why})", k.name()))
                .collect();
            write!(
                f,
                "LEFT BEHIND: {}; `ingot gc` deletes them",
                left.join(", ")
            )?;
        } else {
            write!(f, "; nothing left behind")?;
        }
        Ok(())
    }
}

/// Ctrl-C, as a build sees it. A build stops only at its cancellation
/// points — the waits — never in the middle of a create request: a create
/// whose answer is dropped would leave a resource nobody knows the id of.
#[derive(Clone)]
pub struct Cancel(tokio::sync::watch::Receiver<bool>);

impl Cancel {
    pub fn new(rx: tokio::sync::watch::Receiver<bool>) -> Self {
        Cancel(rx)
    }

    pub fn fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Fails once Ctrl-C was pressed.
    pub fn check(&self) -> Result<(), BuildError> {
        if self.fired() {
            Err(BuildError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Runs `op` until it ends or Ctrl-C is pressed.
    pub async fn until<T>(
        &self,
        op: impl Future<Output = Result<T, BuildError>>,
    ) -> Result<T, BuildError> {
        self.race(op).await.unwrap_or(Err(BuildError::Cancelled))
    }

    /// `op`'s result, or `None` once Ctrl-C is (or was) pressed: for
    /// callers with their own error type (deploys).
    pub async fn race<T>(&self, op: impl Future<Output = T>) -> Option<T> {
        if self.fired() {
            return None;
        }
        let mut rx = self.0.clone();
        tokio::select! {
            r = op => Some(r),
            _ = rx.wait_for(|c| *c) => None,
        }
    }
}

/// What a build created so far, shared with its cleanup: the build's own
/// future may be dropped (Ctrl-C) at any await.
struct Created {
    journal: Journal,
    server: RefCell<Option<String>>,
    /// A snapshot that is not (yet) a release.
    image: RefCell<Option<String>>,
}

impl Created {
    fn record(&self, entry: Entry) -> Result<(), BuildError> {
        self.journal
            .record(&entry)
            .map_err(|source| BuildError::Journal {
                path: self.journal.path().to_path_buf(),
                source,
            })
    }
}

pub struct OpenStackBuilder<'a, C, I> {
    pub nova: &'a C,
    pub glance: &'a I,
    pub choice: &'a Choice,
    pub opts: &'a OpenStackOptions,
}

/// A fresh build id: short, unique enough across parallel runs and hosts.
pub fn build_id() -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{nanos} {} {} {}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::env::var("HOSTNAME").unwrap_or_default()
    );
    let h = Sha256::digest(seed.as_bytes());
    h.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The release of these inputs, if there is one already.
pub async fn released<I: ImageService>(
    glance: &I,
    manifest: &Manifest,
    owner: Option<&str>,
) -> Result<Option<crate::cloud::image::Image>, CloudError> {
    let mut filters: Vec<(&str, &str)> = vec![(P_DIGEST, manifest.input_digest.as_str())];
    if let Some(o) = owner {
        filters.push(("owner", o));
    }
    let mut found = glance.list(&filters).await?;
    found.retain(|i| i.status == ImageStatus::Active && i.property(P_STATE).is_none());
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    Ok(found.into_iter().next())
}

impl<C: ComputeService, I: ImageService> OpenStackBuilder<'_, C, I> {
    /// Builds one image, cleaning up whatever happens.
    pub async fn build(
        &self,
        job: &Job,
        progress: &Progress,
        cancel: &Cancel,
    ) -> Result<Released, BuildError> {
        let m = &job.rendered.manifest;
        let id = build_id();
        let journal = Journal::create(&self.opts.state, &id, &m.image.name, &self.opts.cloud)
            .map_err(|source| BuildError::Journal {
                path: self.opts.state.join("builds"),
                source,
            })?;
        let created = Created {
            journal,
            server: RefCell::new(None),
            image: RefCell::new(None),
        };
        let outcome = self.run(job, &id, &created, progress, cancel).await;
        let cleanup = self.cleanup(&created, progress).await;
        if cleanup.is_clean() {
            // Everything is accounted for; a trail stays only for gc.
            created.journal.close();
        }
        match outcome {
            Ok(mut released) => {
                released.cleanup = cleanup;
                Ok(released)
            }
            Err(BuildError::Cancelled) => Err(BuildError::CloudCancelled {
                image: m.image.name.clone(),
                cleanup,
            }),
            Err(e) => Err(BuildError::CloudBuild {
                image: m.image.name.clone(),
                build: id,
                source: Box::new(e),
                cleanup,
            }),
        }
    }

    async fn run(
        &self,
        job: &Job,
        id: &str,
        created: &Created,
        progress: &Progress,
        cancel: &Cancel,
    ) -> Result<Released, BuildError> {
        cancel.check()?;
        let started = Instant::now();
        let m = &job.rendered.manifest;
        let name = format!("ingot-build-{}-{id}", m.image.name);
        let lease = self.lease_until().to_string();
        let metadata: BTreeMap<String, String> = [
            (M_BUILD, id.to_string()),
            (M_LEASE, lease.clone()),
            ("ingot_image", m.image.name.clone()),
            (P_DIGEST, m.input_digest.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let server = NewServer {
            name: name.clone(),
            image_id: job.base.id.clone(),
            flavor_id: self.choice.flavor.id.clone(),
            networks: Networks::Ids(vec![self.choice.network.id.clone()]),
            user_data: Some(job.rendered.bake.bytes.clone()),
            metadata,
            tags: vec![TAG.to_string(), BUILD_TAG.to_string()],
            security_groups: vec![],
            key_name: None,
        };
        created.record(Entry::Creating {
            kind: Kind::Server,
            name: name.clone(),
            at: crate::cloud::time::now(),
        })?;
        progress.say(&format!(
            "creating build server {name} ({} on {}, base {})",
            self.choice.flavor.name, self.choice.network.name, job.base.label
        ));
        // Not a cancellation point: the answer carries the id cleanup needs.
        let server_id = self.nova.create_server(&server).await?;
        *created.server.borrow_mut() = Some(server_id.clone());
        created.record(Entry::Created {
            kind: Kind::Server,
            name: name.clone(),
            id: server_id.clone(),
            at: crate::cloud::time::now(),
        })?;
        progress.say(&format!(
            "build server {server_id} created; watching its console (timeout {} s)",
            self.opts.timeout.as_secs()
        ));
        cancel.check()?;

        // The bake, through the same gate as the QEMU builder.
        let t = Instant::now();
        let mut guest = ServerGuest {
            nova: self.nova,
            id: server_id.clone(),
            tail: console::ConsoleTail::default(),
            poll: self.opts.poll,
        };
        let mut verdict = BakeVerdict::with_packages(&job.rendered.package_layers);
        let settle = self.opts.poll * 10;
        let ending = cancel
            .until(gate::watch(
                &mut guest,
                &mut verdict,
                self.opts.timeout,
                settle,
                progress,
                "baking",
            ))
            .await?;
        let fail = |reason: String| BuildError::BakeFailed {
            image: m.image.name.clone(),
            reason,
            log: None,
        };
        match ending {
            Ending::TimedOut => {
                return Err(BuildError::Timeout {
                    image: m.image.name.clone(),
                    seconds: self.opts.timeout.as_secs(),
                    log: None,
                })
            }
            Ending::Failed(fault) => {
                return Err(BuildError::ServerFailed {
                    image: m.image.name.clone(),
                    server: server_id,
                    fault,
                })
            }
            Ending::Stopped(how) => {
                verdict
                    .judge(self.opts.allow_degraded, &how)
                    .map_err(fail)?;
            }
            Ending::Decided { stopped } => {
                verdict.judge(self.opts.allow_degraded, "").map_err(fail)?;
                if stopped.is_none() {
                    progress.say(&format!(
                        "the guest sealed the image but still runs after {} s; stopping it",
                        settle.as_secs()
                    ));
                    self.nova.stop_server(&server_id).await?;
                    cancel
                        .until(self.wait_stopped(&server_id, progress))
                        .await?;
                }
            }
        }
        if let Some((image, digest)) = &verdict.sealed {
            if *digest != m.input_digest || *image != m.image.name {
                return Err(fail(format!(
                    "the console reports {image} {digest}, expected {} {}",
                    m.image.name, m.input_digest
                )));
            }
        }
        let bake_seconds = t.elapsed().as_secs_f64();
        cancel.check()?;

        // The snapshot, active before the server goes.
        let t = Instant::now();
        let release_name = properties::image_name(m);
        created.record(Entry::Creating {
            kind: Kind::Image,
            name: release_name.clone(),
            at: crate::cloud::time::now(),
        })?;
        progress.say(&format!("snapshotting the server as {release_name}"));
        let snapshot_meta: BTreeMap<String, String> = [
            (M_BUILD.to_string(), id.to_string()),
            (M_LEASE.to_string(), lease.clone()),
            (P_STATE.to_string(), STATE_BUILDING.to_string()),
            // Not the release's digest yet: a snapshot inherits its base's
            // properties, and only a finished release may carry this one.
            (P_DIGEST.to_string(), format!("pending:{id}")),
        ]
        .into_iter()
        .collect();
        let image_id = self
            .nova
            .create_image(&server_id, &release_name, &snapshot_meta)
            .await?;
        *created.image.borrow_mut() = Some(image_id.clone());
        created.record(Entry::Created {
            kind: Kind::Image,
            name: release_name.clone(),
            id: image_id.clone(),
            at: crate::cloud::time::now(),
        })?;
        let image = cancel
            .until(self.wait_active(&image_id, &m.image.name, progress))
            .await?;
        cancel.until(self.wait_task_done(&server_id)).await?;
        let snapshot_seconds = t.elapsed().as_secs_f64();
        self.delete_server(created, progress).await?;
        cancel.check()?;

        // The bytes as Glance serves them, then the release's record.
        let t = Instant::now();
        let hashes = cancel
            .until(self.hash(&image_id, image.size, progress))
            .await?;
        check_hashes(&image, &hashes)?;
        let hash_seconds = t.elapsed().as_secs_f64();

        let mut manifest = m.clone();
        manifest.build = Some(BuildRecord {
            builder: BuilderKind::Openstack,
            base: BaseRecord {
                sha256: job.base.sha256.clone(),
                sha512: job.base.sha512.clone(),
                source: job.base.source.clone(),
                format: job.base.disk_format.clone(),
            },
            image: None,
            glance: Some(GlanceImage {
                id: image_id.clone(),
                name: release_name.clone(),
                disk_format: image
                    .property("disk_format")
                    .map(str::to_string)
                    .unwrap_or_else(|| job.base.disk_format.clone()),
                bytes: hashes.bytes,
                sha256: hashes.sha256.clone(),
                sha512: hashes.sha512.clone(),
            }),
            cloud_init_status: verdict.cloud_init_status.unwrap_or(0),
            finished_at: crate::cloud::time::format_rfc3339(crate::cloud::time::now()),
            seconds: Seconds {
                base: round(job.base.seconds),
                cloud_init: verdict.cloud_init_done.map(|d| round(d.as_secs_f64())),
                bake: round(bake_seconds),
                convert: round(snapshot_seconds),
                hash: round(hash_seconds),
                total: round(started.elapsed().as_secs_f64() + job.base.seconds),
            },
        });

        // Another run may have released the same inputs meanwhile.
        let meanwhile = if self.opts.force {
            None
        } else {
            released(self.glance, m, self.opts.owner.as_deref()).await?
        };
        if let Some(other) = meanwhile {
            progress.say(&format!(
                "{} was released meanwhile as image {}: this snapshot is not needed",
                m.image.name, other.id
            ));
            return Ok(Released {
                image: other,
                manifest,
                reused: true,
                cleanup: Cleanup::default(),
            });
        }
        cancel.check()?;
        let build = manifest.build.as_ref().expect("just set");
        let record = properties::new_image(
            &manifest,
            build,
            &self.opts.visibility,
            crate::cloud::time::now(),
            image.virtual_size,
        )?;
        for tag in &record.tags {
            if !image.tags.contains(tag) {
                self.glance.add_tag(&image_id, tag).await?;
            }
        }
        let mut patch: Vec<ImagePatch> = Vec::new();
        for key in SNAPSHOT_BOOKKEEPING {
            if image.properties.contains_key(*key) {
                patch.push(ImagePatch::remove(key));
            }
        }
        patch.push(ImagePatch::replace("visibility", &record.visibility));
        if let Some(d) = record.min_disk {
            patch.push(ImagePatch::number("min_disk", d));
        }
        if let Some(r) = record.min_ram {
            patch.push(ImagePatch::number("min_ram", r));
        }
        for (k, v) in &record.properties {
            patch.push(ImagePatch::add(k, v));
        }
        progress.say(&format!(
            "writing the release's {} properties",
            record.properties.len()
        ));
        // One PATCH, applied at once by Glance: the snapshot becomes a
        // release with all its properties or stays an unfinished snapshot.
        self.glance.update(&image_id, &patch).await?;
        created.image.borrow_mut().take();
        created.record(Entry::Released {
            id: image_id.clone(),
            at: crate::cloud::time::now(),
        })?;
        let image = self
            .glance
            .get(&image_id)
            .await?
            .ok_or_else(|| BuildError::Snapshot {
                image: m.image.name.clone(),
                id: image_id.clone(),
                status: "deleted".into(),
            })?;
        progress.say(&format!(
            "released {} as image {image_id} in {:.0} s: bake {:.0} s, snapshot {:.0} s, hashing {:.1} s",
            release_name,
            started.elapsed().as_secs_f64(),
            bake_seconds,
            snapshot_seconds,
            hash_seconds
        ));
        Ok(Released {
            image,
            manifest,
            reused: false,
            cleanup: Cleanup::default(),
        })
    }

    /// Every deadline of a build added up, plus room for hashing and
    /// writing the release: after this a build that is still running has
    /// failed anyway.
    fn lease_until(&self) -> i64 {
        let deadlines = self.opts.timeout
            + STOP_DEADLINE
            + self.opts.snapshot_timeout
            + DELETE_DEADLINE
            + Duration::from_secs(1800);
        crate::cloud::time::now() + deadlines.as_secs() as i64
    }

    async fn wait_stopped(&self, id: &str, progress: &Progress) -> Result<(), BuildError> {
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            match self.nova.server(id).await? {
                Some(s) if s.status == ServerStatus::Shutoff => {
                    progress.say("the build server is stopped");
                    return Ok(());
                }
                Some(s) if s.status == ServerStatus::Error => {
                    return Err(BuildError::ServerFailed {
                        image: s.name.clone(),
                        server: id.to_string(),
                        fault: fault_text(&s),
                    })
                }
                None => {
                    return Err(BuildError::ServerFailed {
                        image: String::new(),
                        server: id.to_string(),
                        fault: "the server disappeared".into(),
                    })
                }
                Some(_) if Instant::now() >= deadline => {
                    return Err(BuildError::Timeout {
                        image: format!("server {id} (stopping)"),
                        seconds: 300,
                        log: None,
                    })
                }
                Some(_) => tokio::time::sleep(self.opts.poll).await,
            }
        }
    }

    async fn wait_active(
        &self,
        id: &str,
        image: &str,
        progress: &Progress,
    ) -> Result<crate::cloud::image::Image, BuildError> {
        let deadline = Instant::now() + self.opts.snapshot_timeout;
        let mut last: Option<ImageStatus> = None;
        loop {
            let found = self.glance.get(id).await?;
            let status = found.as_ref().map(|i| i.status);
            if status != last {
                progress.say(&format!(
                    "snapshot {id}: {}",
                    status
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "gone".into())
                ));
                last = status;
            }
            match found {
                Some(i) if i.status == ImageStatus::Active => return Ok(i),
                Some(i)
                    if matches!(
                        i.status,
                        ImageStatus::Killed
                            | ImageStatus::Deleted
                            | ImageStatus::PendingDelete
                            | ImageStatus::Deactivated
                    ) =>
                {
                    return Err(BuildError::Snapshot {
                        image: image.to_string(),
                        id: id.to_string(),
                        status: i.status.to_string(),
                    })
                }
                None => {
                    return Err(BuildError::Snapshot {
                        image: image.to_string(),
                        id: id.to_string(),
                        status: "deleted".into(),
                    })
                }
                Some(i) if Instant::now() >= deadline => {
                    return Err(BuildError::SnapshotTimeout {
                        image: image.to_string(),
                        id: id.to_string(),
                        status: i.status.to_string(),
                        seconds: self.opts.snapshot_timeout.as_secs(),
                    })
                }
                Some(_) => tokio::time::sleep(self.opts.poll).await,
            }
        }
    }

    /// Waits until Nova has finished the snapshot on its side: Glance says
    /// `active` as soon as the upload ends, but nova-compute then still
    /// clears the server's task state, and a server deleted before that
    /// makes it delete the image it has just uploaded (its
    /// `UnexpectedTaskStateError` reaches `delete_image_on_error`). Seen with
    /// ten builds at once on a loaded playground: an active snapshot gone
    /// before it was hashed. Past the deadline the build goes on as before.
    async fn wait_task_done(&self, id: &str) -> Result<(), BuildError> {
        let deadline = Instant::now() + DELETE_DEADLINE;
        while let Some(s) = self.nova.server(id).await? {
            if s.task_state.is_none() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(self.opts.poll.min(Duration::from_secs(2))).await;
        }
        Ok(())
    }

    /// Deletes the build server and waits until Nova no longer lists it.
    async fn delete_server(
        &self,
        created: &Created,
        progress: &Progress,
    ) -> Result<(), BuildError> {
        let server = created.server.borrow().clone();
        let Some(id) = server else {
            return Ok(());
        };
        self.nova.delete_server(&id).await?;
        let deadline = Instant::now() + DELETE_DEADLINE;
        while self.nova.server(&id).await?.is_some() {
            if Instant::now() >= deadline {
                return Err(BuildError::Timeout {
                    image: format!("server {id} (deleting)"),
                    seconds: 120,
                    log: None,
                });
            }
            tokio::time::sleep(self.opts.poll.min(Duration::from_secs(2))).await;
        }
        created.server.borrow_mut().take();
        created.record(Entry::Deleted {
            kind: Kind::Server,
            id: id.clone(),
            at: crate::cloud::time::now(),
        })?;
        progress.say(&format!("build server {id} deleted"));
        Ok(())
    }

    /// Streams the snapshot from Glance through sha256 and sha512.
    async fn hash(
        &self,
        id: &str,
        size: Option<u64>,
        progress: &Progress,
    ) -> Result<crate::release::Hashes, BuildError> {
        use sha2::{Digest, Sha256, Sha512};
        let mut data = self.glance.download(id).await?;
        let (mut sha256, mut sha512, mut bytes) = (Sha256::new(), Sha512::new(), 0u64);
        let started = Instant::now();
        let mut tick = Instant::now();
        while let Some(chunk) =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(data.stream.as_mut(), cx))
                .await
        {
            let chunk = chunk.map_err(|e| {
                BuildError::Cloud(CloudError::Transport {
                    service: "glance",
                    method: "GET".into(),
                    url: format!("image {id} file"),
                    message: e.to_string(),
                })
            })?;
            sha256.update(&chunk);
            sha512.update(&chunk);
            bytes += chunk.len() as u64;
            if tick.elapsed() >= Duration::from_secs(5) {
                tick = Instant::now();
                progress.bytes("hashing the snapshot", bytes, size, started);
            }
        }
        Ok(crate::release::Hashes {
            sha256: crate::base::hex(&sha256.finalize()),
            sha512: crate::base::hex(&sha512.finalize()),
            bytes,
        })
    }

    /// Deletes what the build created and did not keep, once. Bounded:
    /// every request has its own deadline, and what could not be deleted
    /// is named.
    async fn cleanup(&self, created: &Created, progress: &Progress) -> Cleanup {
        let mut cleanup = Cleanup::default();
        let server = created.server.borrow().clone();
        if let Some(id) = server {
            match self.delete_server(created, progress).await {
                Ok(()) => cleanup.deleted.push((Kind::Server, id)),
                Err(e) => cleanup.left.push((Kind::Server, id, e.to_string())),
            }
        }
        let image = created.image.borrow_mut().take();
        if let Some(id) = image {
            match self.glance.delete(&id).await {
                Ok(_) => {
                    let _ = created.record(Entry::Deleted {
                        kind: Kind::Image,
                        id: id.clone(),
                        at: crate::cloud::time::now(),
                    });
                    progress.say(&format!("unfinished snapshot {id} deleted"));
                    cleanup.deleted.push((Kind::Image, id));
                }
                Err(e) => cleanup.left.push((Kind::Image, id, e.to_string())),
            }
        }
        cleanup
    }
}

/// What Glance serves is what it says it stored.
fn check_hashes(
    image: &crate::cloud::image::Image,
    h: &crate::release::Hashes,
) -> Result<(), BuildError> {
    let mismatch = |what: &'static str, theirs: String| BuildError::SnapshotMismatch {
        id: image.id.clone(),
        what,
        theirs,
        ours: match what {
            "size" => h.bytes.to_string(),
            _ => h.sha512.clone(),
        },
    };
    if let (Some("sha512"), Some(v)) = (
        image.os_hash_algo.as_deref(),
        image.os_hash_value.as_deref(),
    ) {
        if v != h.sha512 {
            return Err(mismatch("sha512", v.to_string()));
        }
    }
    if image.size.is_some_and(|s| s != h.bytes) {
        return Err(mismatch("size", image.size.unwrap_or(0).to_string()));
    }
    Ok(())
}

fn round(s: f64) -> f64 {
    (s * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_ids_are_short_and_differ() {
        let a = build_id();
        let b = build_id();
        assert_eq!(a.len(), 8);
        assert_ne!(a, b);
    }

    #[test]
    fn cleanup_says_what_was_deleted_and_left() {
        assert_eq!(
            Cleanup::default().to_string(),
            "nothing was left in the cloud"
        );
        let c = Cleanup {
            deleted: vec![(Kind::Server, "s1".into()), (Kind::Image, "i1".into())],
            left: vec![],
        };
        assert_eq!(
            c.to_string(),
            "deleted server s1, image i1; nothing left behind"
        );
        let c = Cleanup {
            deleted: vec![(Kind::Server, "s1".into())],
            left: vec![(Kind::Image, "i1".into(), "HTTP 503".into())],
        };
        assert_eq!(
            c.to_string(),
            "deleted server s1; LEFT BEHIND: image i1 (HTTP 503); `ingot gc` deletes them"
        );
    }
}
