//! The local builder: a copy-on-write overlay on the base image, the bake
//! user-data on a NoCloud seed, a QEMU guest watched through its serial
//! console until the bake's readiness gate powers it off, then conversion
//! to a standalone compressed qcow2.

use super::{BakeJob, Baked, BuildError, Builder};
use crate::progress::Progress;
use crate::qemu::{self, Boot, QemuConfig, SerialLog, Vm, VmSpec};
use std::path::Path;
use std::time::{Duration, Instant};

/// `cloud-init status` exit code for a recoverable, "degraded" result.
pub const CLOUD_INIT_DEGRADED: i32 = 2;

pub struct QemuBuilder {
    pub qemu: QemuConfig,
}

/// What the console said, as far as the gate is concerned.
#[derive(Debug, Default)]
struct Verdict {
    ok: bool,
    failed: Option<String>,
    cloud_init_status: Option<i32>,
    failed_checks: Vec<String>,
    /// cloud-init's own error details, as the gate prints them on failure.
    errors: Vec<String>,
    last_line: String,
    /// When cloud-init's result appeared, from the VM's start: how long a
    /// from-scratch instance takes to install and configure every layer.
    cloud_init_done: Option<Duration>,
}

impl Verdict {
    /// Reads one console line; returns a progress message worth showing.
    fn read(&mut self, line: &str) -> Option<String> {
        let line = line.trim();
        if !line.is_empty() {
            self.last_line = line.to_string();
        }
        if let Some(rest) = marker(line, "INGOT-BAKE-OK") {
            self.ok = true;
            return Some(format!("the guest sealed the image ({rest})"));
        }
        if let Some(rest) = marker(line, "INGOT-BAKE-FAILED") {
            self.failed.get_or_insert_with(|| rest.to_string());
            return Some(format!("the bake failed: {rest}"));
        }
        if let Some(rest) = marker(line, "INGOT-CLOUD-INIT-STATUS") {
            self.cloud_init_status = rest.trim().parse().ok();
            return Some(format!("cloud-init finished with status {}", rest.trim()));
        }
        if let Some(rest) = marker(line, "INGOT-CHECK-FAILED") {
            self.failed_checks.push(rest.to_string());
            return Some(format!("check failed: {rest}"));
        }
        if let Some(rest) = marker(line, "[ingot] cloud-init: ") {
            // `status --long` lists failures as ('module', Error(...)).
            if rest.starts_with('(') {
                self.errors.push(rest.to_string());
            }
            return None;
        }
        if line.contains("[ingot] output: ") {
            return None;
        }
        if let Some(i) = line.find("[ingot] ") {
            return Some(line[i + "[ingot] ".len()..].to_string());
        }
        if line.contains("Cloud-init v.") && line.contains("running 'modules:final'") {
            return Some("cloud-init final stage: packages, files, commands".into());
        }
        None
    }
}

/// The text after a marker, wherever the console put the marker in a line
/// (systemd prefixes service output with the unit's name).
fn marker<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let i = line.find(name)?;
    Some(line[i + name.len()..].trim())
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

impl Builder for QemuBuilder {
    fn name(&self) -> &'static str {
        "qemu"
    }

    async fn bake(&self, job: &BakeJob<'_>, progress: &Progress) -> Result<Baked, BuildError> {
        let overlay = job.work.join("overlay.qcow2");
        let base_disk = absolute(&job.base.disk());
        qemu::create_overlay(&self.qemu.img, &base_disk, &job.base.format, &overlay).await?;
        let seed = job.work.join("seed.iso");
        let meta = format!(
            "instance-id: ingot-bake-{}-{}\nlocal-hostname: ingot-bake\n",
            job.image,
            std::process::id()
        );
        qemu::write_seed(
            job.work,
            &seed,
            job.user_data,
            &meta,
            Some(BAKE_VENDOR_DATA),
        )
        .await?;
        let boot = match (&job.base.kernel, &job.base.initrd) {
            (Some(k), Some(i)) => Boot::Kernel {
                kernel: job.base.dir.join(k),
                initrd: job.base.dir.join(i),
                append: "root=LABEL=rootfs ro console=ttyS0 net.ifnames=0".into(),
            },
            _ => Boot::Disk,
        };
        let serial = job.work.join("serial.log");
        let spec = VmSpec {
            disk: overlay.clone(),
            seed,
            boot,
            forwards: vec![],
            serial_log: serial.clone(),
        };
        let started = Instant::now();
        let mut vm = Vm::start(&self.qemu, &spec, &job.work.join("qemu.stderr"))?;
        progress.say(&format!(
            "baking in a QEMU guest (pid {}, accel {}, timeout {} s); serial log {}",
            vm.pid,
            self.qemu.accel.name(),
            job.timeout.as_secs(),
            serial.display()
        ));
        let verdict = watch(&mut vm, &serial, job, progress).await;
        let bake_seconds = started.elapsed().as_secs_f64();
        let (verdict, exit) = match verdict {
            Ok(v) => v,
            Err(e) => {
                vm.kill().await;
                return Err(e);
            }
        };
        judge(job, &verdict, &exit, &serial)?;

        let t = Instant::now();
        progress.say(&format!(
            "converting to a standalone {}-compressed qcow2",
            job.compression.name()
        ));
        let image = job.work.join("image.qcow2");
        qemu::convert(&self.qemu.img, &overlay, &image, job.compression).await?;
        Ok(Baked {
            image,
            cloud_init_status: verdict.cloud_init_status.unwrap_or(0),
            cloud_init_seconds: verdict.cloud_init_done.map(|d| d.as_secs_f64()),
            bake_seconds,
            convert_seconds: t.elapsed().as_secs_f64(),
        })
    }
}

/// Follows the console until the guest powers off or the timeout passes.
/// Ctrl-C drops this future (see `run`): the `Vm` is killed by its drop.
async fn watch(
    vm: &mut Vm,
    serial: &Path,
    job: &BakeJob<'_>,
    progress: &Progress,
) -> Result<(Verdict, String), BuildError> {
    let mut log = SerialLog::new(serial);
    let mut verdict = Verdict::default();
    let started = Instant::now();
    let deadline = started + job.timeout;
    let mut heartbeat = Instant::now();
    loop {
        for line in log.new_lines() {
            if let Some(msg) = verdict.read(&line) {
                progress.say(&msg);
                heartbeat = Instant::now();
            }
        }
        if verdict.cloud_init_status.is_some() && verdict.cloud_init_done.is_none() {
            verdict.cloud_init_done = Some(started.elapsed());
        }
        if vm.try_wait().is_some() {
            // The last lines may have landed after the previous read.
            for line in log.new_lines() {
                if let Some(msg) = verdict.read(&line) {
                    progress.say(&msg);
                }
            }
            let exit = vm
                .try_wait()
                .map(|s| format!("qemu {s}"))
                .unwrap_or_else(|| "qemu exited".into());
            return Ok((verdict, exit));
        }
        if Instant::now() >= deadline {
            return Err(BuildError::Timeout {
                image: job.image.to_string(),
                seconds: job.timeout.as_secs(),
                log: Some(serial.to_path_buf()),
            });
        }
        if heartbeat.elapsed() >= Duration::from_secs(30) {
            heartbeat = Instant::now();
            progress.say(&format!(
                "still baking; console: {}",
                shorten(&verdict.last_line)
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The readiness policy: the gate's own verdict, then cloud-init's status.
fn judge(job: &BakeJob<'_>, v: &Verdict, exit: &str, serial: &Path) -> Result<(), BuildError> {
    let fail = |reason: String| BuildError::BakeFailed {
        image: job.image.to_string(),
        reason,
        log: Some(serial.to_path_buf()),
    };
    if let Some(reason) = &v.failed {
        let mut reason = reason.clone();
        if !v.failed_checks.is_empty() {
            reason.push_str(&format!(" ({})", v.failed_checks.join("; ")));
        }
        if !v.errors.is_empty() {
            reason.push_str(&format!(": {}", v.errors.join("; ")));
        }
        return Err(fail(reason));
    }
    if !v.ok {
        return Err(fail(format!(
            "the guest stopped without sealing the image ({exit}); last console line: {}",
            shorten(&v.last_line)
        )));
    }
    if v.cloud_init_status == Some(CLOUD_INIT_DEGRADED) && !job.allow_degraded {
        return Err(fail(
            "cloud-init reported a degraded result (status 2: deprecated keys or recoverable errors); \
             fix the layers or pass --allow-degraded"
                .into(),
        ));
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s.to_string()
    }
}

fn absolute(p: &Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_from_a_real_looking_console() {
        let mut v = Verdict::default();
        v.read("[   42.1] cloud-init[512]: [ingot] bake layer nginx (2/4)");
        assert_eq!(
            v.read("[ 100.0] ingot-seal.sh[900]: INGOT-CLOUD-INIT-STATUS 2")
                .as_deref(),
            Some("cloud-init finished with status 2")
        );
        v.read("INGOT-CHECK-FAILED web/http: HTTP 502, expected 200");
        v.read("INGOT-BAKE-FAILED health checks");
        v.read("[ 1124.2] seal[5330]: [ingot] cloud-init: detail:");
        v.read(
            "[ 1124.2] seal[5330]: [ingot] cloud-init: ('timezone', OSError('Invalid timezone'))",
        );
        assert_eq!(v.errors, ["('timezone', OSError('Invalid timezone'))"]);
        assert_eq!(v.cloud_init_status, Some(2));
        assert_eq!(v.failed.as_deref(), Some("health checks"));
        assert_eq!(v.failed_checks, ["web/http: HTTP 502, expected 200"]);
        assert!(!v.ok);
    }
}
