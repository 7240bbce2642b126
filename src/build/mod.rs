//! Building golden images: render, obtain the base, bake it in a builder,
//! gate it on readiness, and write an artifact folder.
//!
//! An artifact is `artifacts/<image>/<version>-<digest12>/` holding
//! `image.qcow2`, `bake.user-data`, `boot.user-data` (rendered without
//! secrets) and `manifest.json`. It appears whole or not at all: everything
//! is made in a staging folder renamed into place at the end. A folder for
//! the same input digest means the image is already built.

mod error;
mod qemu_builder;
mod verify;

pub use error::BuildError;
pub use qemu_builder::{QemuBuilder, BAKE_VENDOR_DATA, CLOUD_INIT_DEGRADED};
pub use verify::{verify, VerifyOptions, VerifyReport};

use crate::base::Cache;
use crate::config::ImageInput;
use crate::progress::Progress;
use crate::qemu::Compression;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct BuildOptions {
    pub artifacts: PathBuf,
    pub cache: Cache,
    pub timeout: Duration,
    pub compression: Compression,
    /// Accept cloud-init's "degraded" result (exit 2: deprecated keys,
    /// recoverable errors). Off: a degraded bake is a failed bake.
    pub allow_degraded: bool,
    /// Build even when an artifact with the same input digest exists.
    pub force: bool,
}

/// What a finished build produced.
pub struct Artifact {
    pub dir: PathBuf,
    pub manifest: Value,
    /// False when an artifact with the same digest was found and reused.
    pub built: bool,
}

/// One builder: boots the base with the bake user-data and returns once the
/// guest sealed itself (or failed). `work` is its scratch folder.
pub trait Builder {
    fn name(&self) -> &'static str;
    fn bake(
        &self,
        job: &BakeJob<'_>,
        progress: &Progress,
    ) -> impl std::future::Future<Output = Result<Baked, BuildError>>;
}

pub struct BakeJob<'a> {
    pub image: &'a str,
    pub base: &'a crate::base::BaseImage,
    pub user_data: &'a [u8],
    pub work: &'a Path,
    pub timeout: Duration,
    pub compression: Compression,
    pub allow_degraded: bool,
}

pub struct Baked {
    /// The standalone, compressed golden image, inside `work`.
    pub image: PathBuf,
    pub cloud_init_status: i32,
    /// From the VM's start to cloud-init's final result, when seen.
    pub cloud_init_seconds: Option<f64>,
    pub bake_seconds: f64,
    pub convert_seconds: f64,
}

pub async fn build<B: Builder>(
    builder: &B,
    input: &ImageInput,
    opts: &BuildOptions,
    progress: &Progress,
) -> Result<Artifact, BuildError> {
    let started = Instant::now();
    // Secrets are never needed to build: the bake cannot see them.
    let mut overrides = input.overrides.clone();
    overrides.secrets.clear();
    overrides.defer_required_secrets = true;
    let input = ImageInput {
        image: input.image.clone(),
        layers_dir: input.layers_dir.clone(),
        overrides,
    };
    let (comp, rendered) = crate::run::build(&input)?;
    let digest = rendered.manifest["input_digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let short = digest
        .strip_prefix("sha256:")
        .and_then(|h| h.get(..12))
        .unwrap_or("unknown");
    let parent = opts.artifacts.join(&comp.image.name);
    let dir = parent.join(format!("{}-{short}", comp.image.version));
    if !opts.force {
        if let Some(manifest) = existing(&dir, &rendered.manifest) {
            progress.say(&format!(
                "already built: {} (input digest {digest}); --force builds again",
                dir.display()
            ));
            return Ok(Artifact {
                dir,
                manifest,
                built: false,
            });
        }
    }
    progress.say(&format!(
        "building {} {} ({}) with the {} builder, input digest {digest}",
        comp.image.name,
        comp.image.version,
        comp.image.distro,
        builder.name()
    ));

    let t = Instant::now();
    let base = opts
        .cache
        .obtain(comp.image.distro, &comp.image.base, progress)
        .await?;
    let base_seconds = t.elapsed().as_secs_f64();

    let staging = parent.join(format!(".staging-{short}-{}", std::process::id()));
    let guard = Staging::new(&staging)?;
    let job = BakeJob {
        image: &comp.image.name,
        base: &base,
        user_data: &rendered.bake.bytes,
        work: &staging,
        timeout: opts.timeout,
        compression: opts.compression,
        allow_degraded: opts.allow_degraded,
    };
    let baked = match builder.bake(&job, progress).await {
        Ok(b) => b,
        Err(e) => return Err(e.moved_log(guard.keep_only_serial_log(&parent, short))),
    };

    let t = Instant::now();
    progress.say("hashing the golden image");
    let sha256 = crate::base::sha256_file(&baked.image)?;
    let hash_seconds = t.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&baked.image)
        .map(|m| m.len())
        .unwrap_or(0);
    let total_seconds = started.elapsed().as_secs_f64();

    write(&staging.join("bake.user-data"), &rendered.bake.bytes)?;
    write(&staging.join("boot.user-data"), &rendered.boot.bytes)?;
    let mut manifest = rendered.manifest.clone();
    manifest["build"] = json!({
        "builder": builder.name(),
        "base": {"sha256": base.sha256, "source": base.source, "format": base.format},
        "image": {
            "file": "image.qcow2",
            "format": "qcow2",
            "compression": opts.compression.name(),
            "sha256": sha256,
            "bytes": bytes,
        },
        "cloud_init_status": baked.cloud_init_status,
        // The SCS-0102 `image_build_date` of a release published from it.
        "finished_at": crate::cloud::time::format_rfc3339(crate::cloud::time::now()),
        "seconds": {
            "base": round(base_seconds),
            "cloud_init": baked.cloud_init_seconds.map(round),
            "bake": round(baked.bake_seconds),
            "convert": round(baked.convert_seconds),
            "hash": round(hash_seconds),
            "total": round(total_seconds),
        },
    });
    let mut text = serde_json::to_vec_pretty(&manifest).expect("json");
    text.push(b'\n');
    write(&staging.join("manifest.json"), &text)?;
    guard.finish(&dir)?;
    progress.say(&format!(
        "built {} ({:.0} MiB, sha256 {sha256}) in {:.0} s: base {:.0} s, guest {:.0} s, conversion {:.0} s, hashing {:.1} s, the rest {:.1} s",
        dir.join("image.qcow2").display(),
        bytes as f64 / 1048576.0,
        total_seconds,
        base_seconds,
        baked.bake_seconds,
        baked.convert_seconds,
        hash_seconds,
        total_seconds - baked.bake_seconds - baked.convert_seconds - base_seconds - hash_seconds,
    ));
    Ok(Artifact {
        dir,
        manifest,
        built: true,
    })
}

fn round(s: f64) -> f64 {
    (s * 10.0).round() / 10.0
}

/// The manifest of a complete artifact for these inputs, if there is one.
/// Its bake user-data must also be the one rendered now: an ingot that
/// renders the same inputs differently does not reuse an older image.
fn existing(dir: &Path, rendered: &Value) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    let manifest: Value = serde_json::from_str(&text).ok()?;
    let digest = rendered["input_digest"].as_str()?;
    let bake = rendered["user_data"]["bake"]["sha256"].as_str()?;
    let same = manifest["input_digest"].as_str() == Some(digest)
        && manifest["user_data"]["bake"]["sha256"].as_str() == Some(bake);
    (same && dir.join("image.qcow2").is_file()).then_some(manifest)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    std::fs::write(path, bytes).map_err(|source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The staging folder of a build: removed however the build ends, unless it
/// was renamed into place. Cleanup happens once, in `Drop`.
struct Staging {
    path: PathBuf,
    done: std::cell::Cell<bool>,
}

impl Staging {
    fn new(path: &Path) -> Result<Self, BuildError> {
        std::fs::create_dir_all(path).map_err(|source| BuildError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Staging {
            path: path.to_path_buf(),
            done: std::cell::Cell::new(false),
        })
    }

    fn finish(&self, dir: &Path) -> Result<(), BuildError> {
        for scratch in ["overlay.qcow2", "seed.iso", "seed", "qemu.stderr"] {
            let p = self.path.join(scratch);
            let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
        }
        if dir.exists() {
            // --force over an existing artifact: replace it.
            std::fs::remove_dir_all(dir).map_err(|source| BuildError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::rename(&self.path, dir).map_err(|source| BuildError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        self.done.set(true);
        Ok(())
    }

    /// After a failed bake, the serial log is what explains it: keep it
    /// beside the artifacts (named in the error), drop everything else.
    fn keep_only_serial_log(&self, parent: &Path, short: &str) -> Option<PathBuf> {
        let log = self.path.join("serial.log");
        let kept = parent.join(format!("failed-{short}.serial.log"));
        // What QEMU itself said (a crash, a refused option) goes at the end.
        if let Ok(stderr) = std::fs::read_to_string(self.path.join("qemu.stderr")) {
            if !stderr.trim().is_empty() {
                use std::io::Write;
                if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&log) {
                    let _ = write!(f, "\n--- qemu stderr ---\n{stderr}");
                }
            }
        }
        std::fs::rename(&log, &kept).ok().map(|_| kept)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done.get() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_is_reused_only_for_the_same_digest_and_bake() {
        let dir = tempfile::tempdir().unwrap();
        let rendered = json!({"input_digest": "sha256:a", "user_data": {"bake": {"sha256": "b1"}}});
        std::fs::write(dir.path().join("manifest.json"), rendered.to_string()).unwrap();
        assert!(existing(dir.path(), &rendered).is_none(), "no image yet");
        std::fs::write(dir.path().join("image.qcow2"), b"x").unwrap();
        assert!(existing(dir.path(), &rendered).is_some());
        let other_bake =
            json!({"input_digest": "sha256:a", "user_data": {"bake": {"sha256": "b2"}}});
        assert!(existing(dir.path(), &other_bake).is_none());
        let other_digest =
            json!({"input_digest": "sha256:c", "user_data": {"bake": {"sha256": "b1"}}});
        assert!(existing(dir.path(), &other_digest).is_none());
    }
}
