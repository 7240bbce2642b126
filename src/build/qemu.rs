//! The local builder: a copy-on-write overlay on the cached base image, the
//! bake user-data on a NoCloud seed, a QEMU guest watched through its
//! serial console until the bake's readiness gate powers it off, then
//! conversion to a standalone compressed qcow2 in an artifact folder.
//!
//! An artifact is `artifacts/<image>/<version>-<digest12>/` holding
//! `image.qcow2`, `bake.user-data`, `boot.user-data` (rendered without
//! secrets) and `manifest.json`. It appears whole or not at all: everything
//! is made in a staging folder renamed into place at the end. A folder for
//! the same input digest means the image is already built.

use super::gate::{self, BakeVerdict, Ending, Guest, GuestState};
use super::{BuildError, Built};
use crate::artifact::Artifact;
use crate::base::{BaseImage, Cache};
use crate::manifest::{BaseRecord, BuildRecord, BuilderKind, ImageFile, Manifest, Seconds};
use crate::progress::Progress;
use crate::qemu::{self, Boot, Compression, QemuConfig, SerialLog, Vm, VmSpec};
use crate::render::Rendered;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct QemuBuilder {
    pub qemu: QemuConfig,
}

pub struct QemuOptions {
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

/// Build-only settings, in the seed's vendor-data so that they shape the
/// bake VM and never the image. The image's user-data wins over
/// vendor-data wherever both set a key (then the bake is only slower).
/// - The bake's SSH host keys are thrown away by the image preparation
///   (each instance makes its own at first boot): one fast ed25519 key
///   instead of RSA-3072 + ECDSA + ed25519, seconds of emulated CPU under
///   TCG. sshd still starts, for the bake's checks.
/// - dpkg skips its fsync per unpacked file: the bake's disk is a
///   throw-away overlay (a failed bake is discarded whole) and the seal
///   syncs before power-off. The seal deletes this file before the checks.
pub const BAKE_VENDOR_DATA: &str = "#cloud-config
ssh_genkeytypes: [ed25519]
bootcmd:
  - [sh, -c, 'echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/ingot-bake-unsafe-io']
";

/// After the seal's verdict, how long the guest may take to power off.
const POWER_OFF: Duration = Duration::from_secs(120);

impl QemuBuilder {
    /// Bakes what was rendered into an artifact folder, or finds the one
    /// these inputs already made.
    pub async fn build(
        &self,
        rendered: &Rendered,
        opts: &QemuOptions,
        progress: &Progress,
    ) -> Result<Built, BuildError> {
        let started = Instant::now();
        let m = &rendered.manifest;
        let short = m.short_digest().to_string();
        let parent = opts.artifacts.join(&m.image.name);
        let dir = parent.join(format!("{}-{short}", m.image.version));
        if !opts.force {
            if let Some(artifact) = existing(&dir, m) {
                progress.say(&format!(
                    "already built: {} (input digest {}); --force builds again",
                    dir.display(),
                    m.input_digest
                ));
                return Ok(Built {
                    artifact,
                    built: false,
                });
            }
        }
        progress.say(&format!(
            "building {} {} ({}) with the qemu builder, input digest {}",
            m.image.name,
            m.image.version,
            m.image.distro.name(),
            m.input_digest
        ));

        let t = Instant::now();
        let base = opts
            .cache
            .obtain(m.image.distro, &m.image.base, progress)
            .await?;
        let base_seconds = t.elapsed().as_secs_f64();

        let staging = parent.join(format!(".staging-{short}-{}", std::process::id()));
        let guard = Staging::new(&staging)?;
        let baked = match self.bake(rendered, &base, &staging, opts, progress).await {
            Ok(b) => b,
            Err(e) => return Err(e.moved_log(guard.keep_only_serial_log(&parent, &short))),
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
        let mut manifest = m.clone();
        manifest.build = Some(BuildRecord {
            builder: BuilderKind::Qemu,
            base: BaseRecord {
                sha256: Some(base.sha256.clone()),
                sha512: None,
                source: base.source.clone(),
                format: base.format.clone(),
            },
            image: Some(ImageFile {
                file: "image.qcow2".into(),
                format: "qcow2".into(),
                compression: opts.compression.name().into(),
                sha256: sha256.clone(),
                bytes,
            }),
            glance: None,
            cloud_init_status: baked.cloud_init_status,
            finished_at: crate::cloud::time::format_rfc3339(crate::cloud::time::now()),
            seconds: Seconds {
                base: round(base_seconds),
                cloud_init: baked.cloud_init_seconds.map(round),
                bake: round(baked.bake_seconds),
                convert: round(baked.convert_seconds),
                hash: round(hash_seconds),
                total: round(total_seconds),
            },
        });
        write(
            &staging.join(crate::manifest::FILE_NAME),
            &manifest.to_bytes(),
        )?;
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
        Ok(Built {
            artifact: Artifact { dir, manifest },
            built: true,
        })
    }

    async fn bake(
        &self,
        rendered: &Rendered,
        base: &BaseImage,
        work: &Path,
        opts: &QemuOptions,
        progress: &Progress,
    ) -> Result<Baked, BuildError> {
        let image = rendered.manifest.image.name.as_str();
        let user_data = &rendered.bake.bytes;
        let packages = &rendered.package_layers;
        let overlay = work.join("overlay.qcow2");
        let base_disk = absolute(&base.disk());
        qemu::create_overlay(&self.qemu.img, &base_disk, &base.format, &overlay).await?;
        let seed = work.join("seed.iso");
        let meta = format!(
            "instance-id: ingot-bake-{image}-{}\nlocal-hostname: ingot-bake\n",
            std::process::id()
        );
        qemu::write_seed(work, &seed, user_data, &meta, Some(BAKE_VENDOR_DATA)).await?;
        let boot = match (&base.kernel, &base.initrd) {
            (Some(k), Some(i)) => Boot::Kernel {
                kernel: base.dir.join(k),
                initrd: base.dir.join(i),
                append: "root=LABEL=rootfs ro console=ttyS0 net.ifnames=0".into(),
            },
            _ => Boot::Disk,
        };
        let serial = work.join("serial.log");
        let spec = VmSpec {
            disk: overlay.clone(),
            seed,
            boot,
            forwards: vec![],
            serial_log: serial.clone(),
            // The bake holds no state: the image stays stateless.
            data_disk: None,
        };
        let started = Instant::now();
        let vm = Vm::start(&self.qemu, &spec, &work.join("qemu.stderr"))?;
        progress.say(&format!(
            "baking in a QEMU guest (pid {}, accel {}, timeout {} s); serial log {}",
            vm.pid,
            self.qemu.accel.name(),
            opts.timeout.as_secs(),
            serial.display()
        ));
        // Ctrl-C drops this future (see `run`): the `Vm` is killed by its drop.
        let mut guest = QemuGuest::new(vm, &serial);
        let mut verdict = BakeVerdict::with_packages(packages);
        let ending = gate::watch(
            &mut guest,
            &mut verdict,
            opts.timeout,
            POWER_OFF,
            progress,
            "baking",
        )
        .await;
        let bake_seconds = started.elapsed().as_secs_f64();
        let ending = match ending {
            Ok(e) => e,
            Err(e) => {
                guest.vm.kill().await;
                return Err(e);
            }
        };
        let fail = |reason: String| BuildError::BakeFailed {
            image: image.to_string(),
            reason,
            log: Some(serial.clone()),
        };
        let ended = match ending {
            Ending::TimedOut => {
                guest.vm.kill().await;
                return Err(BuildError::Timeout {
                    image: image.to_string(),
                    seconds: opts.timeout.as_secs(),
                    log: Some(serial.clone()),
                });
            }
            Ending::Decided { stopped: Some(how) } | Ending::Stopped(how) => how,
            Ending::Decided { stopped: None } => {
                guest.vm.kill().await;
                let reason = verdict
                    .judge(opts.allow_degraded, "")
                    .err()
                    .unwrap_or_else(|| {
                        format!(
                            "the guest sealed the image but did not power off within {} s",
                            POWER_OFF.as_secs()
                        )
                    });
                return Err(fail(reason));
            }
            Ending::Failed(why) => return Err(fail(why)),
        };
        verdict.judge(opts.allow_degraded, &ended).map_err(fail)?;

        let t = Instant::now();
        progress.say(&format!(
            "converting to a standalone {}-compressed qcow2",
            opts.compression.name()
        ));
        let golden = work.join("image.qcow2");
        qemu::convert(&self.qemu.img, &overlay, &golden, opts.compression).await?;
        Ok(Baked {
            image: golden,
            cloud_init_status: verdict.cloud_init_status.unwrap_or(0),
            cloud_init_seconds: verdict.cloud_init_done.map(|d| d.as_secs_f64()),
            bake_seconds,
            convert_seconds: t.elapsed().as_secs_f64(),
        })
    }
}

struct Baked {
    /// The standalone, compressed golden image, inside the work folder.
    image: PathBuf,
    cloud_init_status: i32,
    /// From the VM's start to cloud-init's final result, when seen.
    cloud_init_seconds: Option<f64>,
    bake_seconds: f64,
    convert_seconds: f64,
}

/// A QEMU process and its serial log, as the gate watches them.
pub(super) struct QemuGuest {
    pub vm: Vm,
    log: SerialLog,
}

impl QemuGuest {
    pub fn new(vm: Vm, serial: &Path) -> Self {
        QemuGuest {
            vm,
            log: SerialLog::new(serial),
        }
    }
}

impl Guest for QemuGuest {
    async fn new_lines(&mut self) -> Result<Vec<String>, BuildError> {
        Ok(self.log.new_lines())
    }

    async fn state(&mut self) -> Result<GuestState, BuildError> {
        Ok(match self.vm.try_wait() {
            Some(status) => GuestState::Stopped(format!("qemu {status}")),
            None => GuestState::Running,
        })
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(500)
    }
}

fn round(s: f64) -> f64 {
    (s * 10.0).round() / 10.0
}

/// The complete artifact for these inputs, if there is one. Its bake
/// user-data must also be the one rendered now: an ingot that renders the
/// same inputs differently does not reuse an older image.
fn existing(dir: &Path, rendered: &Manifest) -> Option<Artifact> {
    let artifact = Artifact::load(dir).ok()?;
    let m = &artifact.manifest;
    let same = m.input_digest == rendered.input_digest
        && m.user_data.bake.sha256.is_some()
        && m.user_data.bake.sha256 == rendered.user_data.bake.sha256;
    same.then_some(artifact)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    std::fs::write(path, bytes).map_err(|source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
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

    fn golden() -> Manifest {
        let text = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/fixture/manifest.json"),
        )
        .unwrap();
        Manifest::parse(&text, Path::new("m.json")).unwrap()
    }

    fn built(m: &Manifest) -> Manifest {
        let mut m = m.clone();
        m.build = Some(BuildRecord {
            builder: BuilderKind::Qemu,
            base: BaseRecord {
                sha256: Some("b".into()),
                sha512: None,
                source: "build:debian-archive".into(),
                format: "qcow2".into(),
            },
            image: Some(ImageFile {
                file: "image.qcow2".into(),
                format: "qcow2".into(),
                compression: "zstd".into(),
                sha256: "i".into(),
                bytes: 1,
            }),
            glance: None,
            cloud_init_status: 0,
            finished_at: "2026-12-01T00:00:00Z".into(),
            seconds: Seconds {
                base: 0.0,
                cloud_init: None,
                bake: 0.0,
                convert: 0.0,
                hash: 0.0,
                total: 0.0,
            },
        });
        m
    }

    #[test]
    fn an_artifact_is_reused_only_for_the_same_digest_and_bake() {
        let dir = tempfile::tempdir().unwrap();
        let rendered = golden();
        std::fs::write(
            dir.path().join("manifest.json"),
            built(&rendered).to_bytes(),
        )
        .unwrap();
        assert!(existing(dir.path(), &rendered).is_none(), "no image yet");
        std::fs::write(dir.path().join("image.qcow2"), b"x").unwrap();
        assert!(existing(dir.path(), &rendered).is_some());
        let mut other_bake = rendered.clone();
        other_bake.user_data.bake.sha256 = Some("b2".into());
        assert!(existing(dir.path(), &other_bake).is_none());
        let mut other_digest = rendered.clone();
        other_digest.input_digest = "sha256:c".into();
        assert!(existing(dir.path(), &other_digest).is_none());
    }
}
