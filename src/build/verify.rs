//! `ingot verify ARTIFACT`: boot the golden image as a new instance would
//! (its own bootloader, the boot user-data, a new instance id and hostname),
//! forward its declared TCP ports to 127.0.0.1, and check it from outside:
//! the boot phase's verdict and each layer's checks, cloud-init's status, no
//! package installed during this boot, the firewall opening exactly the
//! declared public ports, and every public port answering on the host side.
//!
//! To look inside, verify adds one throw-away user with a fresh SSH key to
//! the boot user-data of this one instance; the image is never modified.

use super::gate::{self, BootVerdict, Ending, CLOUD_INIT_DEGRADED};
use super::qemu::QemuGuest;
use super::BuildError;
use crate::artifact::Artifact;
use crate::manifest::StateRecord;
use crate::model::{Exposure, Protocol};
use crate::progress::Progress;
use crate::protocol::{self, Event};
use crate::qemu::{self, Boot, DataDisk, Forward, QemuConfig, Vm, VmSpec};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct VerifyOptions {
    pub qemu: QemuConfig,
    pub timeout: Duration,
    pub allow_degraded: bool,
    pub data_disk: DataDiskChoice,
}

/// The data disk verify attaches when the image's layers declare state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDiskChoice {
    /// A blank throw-away disk: the first boot of a new deployment.
    Scratch,
    /// This qcow2 file, made blank if it does not exist, and kept: a second
    /// verify with it boots as the next server of a deployment does.
    File(PathBuf),
    /// None: the instance must boot and say that its state is not kept.
    None,
}

/// The data disk's volume id in the instance's metadata and its serial
/// (under Nova's 20 characters): the same for every verify, so a kept disk
/// is found again by its identity.
const VERIFY_VOLUME: &str = "ingot-verify-state";
/// The size of a data disk verify makes: enough for the state of a fresh
/// instance (qcow2 allocates only what is written).
const DATA_DISK_SIZE: &str = "2G";

#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub name: String,
    /// The layer a check belongs to, when it belongs to one.
    pub layer: Option<String>,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub image: String,
    pub version: String,
    pub ok: bool,
    pub checks: Vec<CheckResult>,
    pub serial_log: PathBuf,
    pub boot_seconds: f64,
    /// The data disk attached, when the image declares state: `scratch`,
    /// the kept file's path, or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_disk: Option<String>,
    /// What the instance's state setup said (`/run/ingot/state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

const VERIFY_USER: &str = "ingot-verify";

pub async fn verify(
    artifact: &Path,
    opts: &VerifyOptions,
    progress: &Progress,
) -> Result<VerifyReport, BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    let loaded = Artifact::load(artifact)?;
    let manifest = &loaded.manifest;
    let image_name = manifest.image.name.clone();
    let version = manifest.image.version.clone();
    let image = std::path::absolute(loaded.image_path()?).map_err(io(artifact))?;
    let boot_path = artifact.join(&manifest.user_data.boot.file);
    let boot_doc = std::fs::read(&boot_path).map_err(io(&boot_path))?;

    let work = Scratch::new(artifact.join(format!(".verify-{}", std::process::id())))?;
    let serial = artifact.join("verify.serial.log");
    let _ = std::fs::remove_file(&serial);
    let key = work.0.join("key");
    let mut keygen = tokio::process::Command::new("ssh-keygen");
    keygen
        .args(["-q", "-t", "ed25519", "-N", "", "-C", VERIFY_USER, "-f"])
        .arg(&key);
    qemu::run_checked(&mut keygen, "ssh-keygen").await?;
    let public_key = std::fs::read_to_string(key.with_extension("pub")).map_err(io(&key))?;
    let user_data =
        with_verify_user(&boot_doc, public_key.trim()).map_err(|e| BuildError::BakeFailed {
            image: image_name.clone(),
            reason: format!("cannot read the artifact's boot.user-data: {e}"),
            log: None,
        })?;

    let overlay = work.0.join("overlay.qcow2");
    qemu::create_overlay(&opts.qemu.img, &image, "qcow2", &overlay).await?;
    let seed = work.0.join("seed.iso");
    let instance = format!("ingot-verify-{}", std::process::id());
    let mut meta = format!("instance-id: {instance}\nlocal-hostname: {instance}\n");
    let data_disk = if manifest.state.is_empty() {
        None
    } else {
        let path = match &opts.data_disk {
            DataDiskChoice::None => None,
            DataDiskChoice::Scratch => Some(work.0.join("data.qcow2")),
            DataDiskChoice::File(p) => Some(std::path::absolute(p).map_err(io(p))?),
        };
        if let Some(p) = &path {
            if !p.exists() {
                blank_disk(&opts.qemu.img, p).await?;
            }
            // As the cloud side names the volume: in the server's metadata
            // (NoCloud's meta-data is what `ds.meta_data` holds).
            meta.push_str(&format!(
                "meta:\n  {}: {VERIFY_VOLUME}\n",
                crate::render::state::VOLUME_META_KEY
            ));
        }
        Some(path)
    };
    let report_disk = data_disk.as_ref().map(|d| match (d, &opts.data_disk) {
        (None, _) => "none".to_string(),
        (Some(_), DataDiskChoice::Scratch) => "scratch".to_string(),
        (Some(p), _) => p.display().to_string(),
    });
    qemu::write_seed(&work.0, &seed, user_data.as_bytes(), &meta, None).await?;

    let ssh_port = free_port().map_err(io(artifact))?;
    let mut forwards = vec![Forward {
        host: ssh_port,
        guest: 22,
    }];
    let mut public = Vec::new();
    for p in manifest
        .ports
        .iter()
        .filter(|p| p.exposure == Exposure::Public)
    {
        public.push((p.port, p.protocol.name().to_string(), p.layer.clone()));
        if p.protocol == Protocol::Tcp && p.port != 22 {
            forwards.push(Forward {
                host: free_port().map_err(io(artifact))?,
                guest: p.port,
            });
        }
    }
    let spec = VmSpec {
        disk: overlay,
        seed,
        boot: Boot::Disk,
        forwards: forwards.clone(),
        serial_log: serial.clone(),
        data_disk: data_disk.flatten().map(|path| DataDisk {
            path,
            serial: VERIFY_VOLUME.into(),
        }),
    };
    let started = Instant::now();
    let vm = Vm::start(&opts.qemu, &spec, &work.0.join("qemu.stderr"))?;
    progress.say(&format!(
        "booting {image_name} {version} by its own bootloader (pid {}); serial log {}",
        vm.pid,
        serial.display()
    ));
    let mut guest = QemuGuest::new(vm, &serial);
    let outcome = async {
        let boot = wait_boot(&mut guest, opts.timeout, progress).await?;
        let boot_seconds = started.elapsed().as_secs_f64();
        let mut checks = boot;
        progress.say("checking the instance over SSH");
        let (found, state) = inside(
            &key,
            ssh_port,
            &public,
            &manifest.state,
            spec.data_disk.is_some(),
            opts.allow_degraded,
        )
        .await;
        checks.extend(found);
        progress.say("checking the public ports from the host");
        for f in &forwards {
            let layer = public
                .iter()
                .find(|(p, proto, _)| *p == f.guest && proto == "tcp")
                .map(|(_, _, l)| l.clone());
            let (ok, detail) = probe(f.host).await;
            checks.push(CheckResult {
                name: format!("port {}/tcp answers (127.0.0.1:{})", f.guest, f.host),
                layer,
                ok,
                detail,
            });
        }
        Ok::<_, BuildError>((checks, boot_seconds, state))
    }
    .await;
    guest.vm.kill().await;
    let (checks, boot_seconds, state) = outcome?;
    let ok = checks.iter().all(|c| c.ok);
    Ok(VerifyReport {
        image: image_name,
        version,
        ok,
        checks,
        serial_log: serial,
        boot_seconds,
        data_disk: report_disk,
        state,
    })
}

async fn blank_disk(img: &Path, path: &Path) -> Result<(), BuildError> {
    let mut cmd = tokio::process::Command::new(img);
    cmd.args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(DATA_DISK_SIZE);
    qemu::run_checked(&mut cmd, "qemu-img create").await?;
    Ok(())
}

/// Waits for the boot phase's verdict on the console.
async fn wait_boot(
    guest: &mut QemuGuest,
    timeout: Duration,
    progress: &Progress,
) -> Result<Vec<CheckResult>, BuildError> {
    let mut verdict = BootVerdict::default();
    let finished = |ok: bool, detail: String| CheckResult {
        name: "boot phase finished".into(),
        layer: None,
        ok,
        detail,
    };
    // The instance keeps running once it has decided: nothing to settle.
    let ending = gate::watch(
        guest,
        &mut verdict,
        timeout,
        Duration::ZERO,
        progress,
        "booting",
    )
    .await?;
    Ok(match ending {
        Ending::Decided { .. } if verdict.ready => vec![CheckResult {
            name: format!("boot phase finished ({})", protocol::BOOT_READY),
            layer: None,
            ok: true,
            detail: String::new(),
        }],
        Ending::Decided { .. } => {
            let mut out = vec![finished(false, verdict.failed.clone().unwrap_or_default())];
            out.extend(
                verdict
                    .failed_checks
                    .iter()
                    .map(|(id, reason)| named_check(id, false, reason)),
            );
            out
        }
        Ending::Stopped(_) => vec![finished(
            false,
            "the VM stopped before the boot phase reported".into(),
        )],
        Ending::Failed(why) => vec![finished(false, why)],
        Ending::TimedOut => vec![finished(
            false,
            format!("no {} within {} s", protocol::BOOT_READY, timeout.as_secs()),
        )],
    })
}

/// What is run inside over SSH; prints `key=value` lines and check output.
const INSIDE: &str = r#"
cloud-init status --wait >/dev/null 2>&1; echo "cloud_init_status=$?"
since=$(uptime -s)
echo "installed=$(awk -v s="$since" '($1" "$2) >= s && ($3=="install" || $3=="upgrade") {print $4}' /var/log/dpkg.log 2>/dev/null | tr '\n' ' ')"
/usr/local/lib/ingot/check-boot > /run/ingot-verify-checks 2>&1; echo "checks_status=$?"
sed 's/^/check_line=/' /run/ingot-verify-checks
if command -v ufw >/dev/null 2>&1; then
  echo "ufw_status=$(ufw status | head -n 1)"
  ufw status | awk '$2=="ALLOW" && $1 !~ /\(v6\)/ && $0 !~ /\(v6\)/ {print "ufw_allow=" $1}'
fi
"#;

/// The lines of [`INSIDE`] that tell where each state path is mounted
/// from: `state_dev=` the data disk, `state_src=<path>\t<source>`.
fn inside_state(state: &[StateRecord]) -> String {
    use crate::shell::quote;
    let mut s = format!(
        "echo \"state_status=$(cat {status} 2>/dev/null)\"\n\
         echo \"state_dev=$(readlink -f /dev/disk/by-id/virtio-{VERIFY_VOLUME} 2>/dev/null)\"\n",
        status = quote(crate::render::state::STATUS_PATH),
    );
    for r in state {
        let p = quote(&r.path);
        s.push_str(&format!(
            "printf 'state_src=%s\\t%s\\n' {p} \"$(findmnt -n -o SOURCE -M {p} 2>/dev/null | tail -n 1)\"\n"
        ));
    }
    s
}

/// Each state path is bound to its copy on the data disk (with one), or
/// left on the root disk (without).
fn state_checks(values: &[(&str, &str)], state: &[StateRecord], disk: bool) -> Vec<CheckResult> {
    let dev = values
        .iter()
        .find(|(k, _)| *k == "state_dev")
        .map_or("", |(_, v)| v.trim());
    state
        .iter()
        .map(|r| {
            let source = values
                .iter()
                .filter(|(k, _)| *k == "state_src")
                .filter_map(|(_, v)| v.split_once('\t'))
                .find(|(p, _)| *p == r.path)
                .map_or("", |(_, src)| src.trim());
            let (ok, name, detail) = if disk {
                let want = format!("{dev}[/{}{}]", crate::render::state::PATHS_DIR, r.path);
                (
                    !dev.is_empty() && source == want,
                    format!("state path {} is on the data disk", r.path),
                    if source.is_empty() {
                        "not a mount point".to_string()
                    } else {
                        format!("mounted from {source}, expected {want}")
                    },
                )
            } else {
                (
                    source.is_empty(),
                    format!(
                        "state path {} stays on the root disk (no data disk)",
                        r.path
                    ),
                    if source.is_empty() {
                        String::new()
                    } else {
                        format!("mounted from {source}")
                    },
                )
            };
            CheckResult {
                name,
                layer: Some(r.layer.clone()),
                ok,
                detail: if ok { String::new() } else { detail },
            }
        })
        .collect()
}

async fn inside(
    key: &Path,
    port: u16,
    public: &[(u16, String, String)],
    state: &[StateRecord],
    disk: bool,
    allow_degraded: bool,
) -> (Vec<CheckResult>, Option<String>) {
    let mut out = Vec::new();
    let mut script = INSIDE.to_string();
    if !state.is_empty() {
        script.push_str(&inside_state(state));
    }
    let text = match ssh(key, port, &script).await {
        Ok(t) => t,
        Err(e) => {
            out.push(CheckResult {
                name: "SSH into the instance".into(),
                layer: None,
                ok: false,
                detail: e,
            });
            return (out, None);
        }
    };
    let values: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| {
        values
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.trim())
    };
    let status: i32 = get("cloud_init_status")
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    out.push(CheckResult {
        name: "cloud-init status".into(),
        layer: None,
        ok: status == 0 || (status == CLOUD_INIT_DEGRADED && allow_degraded),
        detail: match status {
            0 => "done".into(),
            2 => "degraded (exit 2)".into(),
            s => format!("error (exit {s})"),
        },
    });
    let installed = get("installed").unwrap_or("").to_string();
    out.push(CheckResult {
        name: "no package installed during this boot".into(),
        layer: None,
        ok: installed.is_empty(),
        detail: installed,
    });
    // The check script's own lines, in the console protocol.
    for (_, line) in values.iter().filter(|(k, _)| *k == "check_line") {
        match protocol::parse(line) {
            Some(Event::CheckOk { id }) => out.push(named_check(&id, true, "")),
            Some(Event::CheckFailed { id, reason }) => out.push(named_check(&id, false, &reason)),
            _ => {}
        }
    }
    if let Some(state) = get("ufw_status") {
        out.push(CheckResult {
            name: "firewall active".into(),
            layer: None,
            ok: state.contains("Status: active"),
            detail: state.to_string(),
        });
        let mut allowed: Vec<String> = values
            .iter()
            .filter(|(k, _)| *k == "ufw_allow")
            .map(|(_, v)| v.trim().to_string())
            .collect();
        allowed.sort();
        allowed.dedup();
        let mut declared: Vec<String> = public
            .iter()
            .map(|(p, proto, _)| format!("{p}/{proto}"))
            .collect();
        declared.sort();
        out.push(CheckResult {
            name: "firewall opens exactly the declared public ports".into(),
            layer: None,
            ok: allowed == declared,
            detail: format!(
                "open: {}; declared: {}",
                allowed.join(" "),
                declared.join(" ")
            ),
        });
    }
    if state.is_empty() {
        return (out, None);
    }
    out.extend(state_checks(&values, state, disk));
    let status = get("state_status").map(str::to_string);
    (out, status)
}

fn named_check(id: &str, ok: bool, detail: &str) -> CheckResult {
    let (layer, name) = Event::split_id(id);
    CheckResult {
        name: format!("check {name}"),
        layer: layer.map(str::to_string),
        ok,
        detail: detail.to_string(),
    }
}

/// Runs a script as root through SSH, retrying the connection while sshd
/// comes up.
async fn ssh(key: &Path, port: u16, script: &str) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut child = tokio::process::Command::new("ssh")
            .args(["-q", "-i"])
            .arg(key)
            .args([
                "-p",
                &port.to_string(),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                &format!("{VERIFY_USER}@127.0.0.1"),
                "sudo sh -s",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run ssh: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(script.as_bytes()).await;
        }
        let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
        if out.status.code() != Some(255) {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_string();
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    Err(format!("no SSH connection within 90 s: {last}"))
}

/// Through QEMU's user networking a host-side connection always succeeds;
/// whether the guest listens shows in what follows: a refused guest
/// connection is closed at once, a listening one sends data or waits.
async fn probe(port: u16) -> (bool, String) {
    use tokio::io::AsyncReadExt;
    let mut stream = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) => return (false, e.to_string()),
    };
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await {
        Ok(Ok(0)) => (false, "closed at once: nothing listens in the guest".into()),
        Ok(Ok(n)) => (
            true,
            format!("answered: {:?}", String::from_utf8_lossy(&buf[..n]).trim()),
        ),
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (true, "accepted (waiting for a request)".into()),
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Adds the verify user to a boot document (gzip or not).
fn with_verify_user(doc: &[u8], public_key: &str) -> Result<String, String> {
    let text = if doc.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(doc)
            .read_to_string(&mut s)
            .map_err(|e| e.to_string())?;
        s
    } else {
        String::from_utf8(doc.to_vec()).map_err(|e| e.to_string())?
    };
    let mut value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
    let map = value.as_mapping_mut().ok_or("not a cloud-config mapping")?;
    let user: serde_yaml::Value = serde_yaml::from_str(&format!(
        "name: {VERIFY_USER}\nsudo: 'ALL=(ALL) NOPASSWD:ALL'\nshell: /bin/sh\nlock_passwd: true\nssh_authorized_keys: ['{public_key}']\n"
    ))
    .map_err(|e| e.to_string())?;
    let users = map
        .entry("users".into())
        .or_insert_with(|| serde_yaml::Value::Sequence(vec!["default".into()]));
    users
        .as_sequence_mut()
        .ok_or("`users` is not a list")?
        .push(user);
    let body = serde_yaml::to_string(&value).map_err(|e| e.to_string())?;
    Ok(format!("#cloud-config\n# ingot verify: the artifact's boot user-data plus a throw-away user.\n{body}"))
}

/// The verify scratch folder, removed however verify ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(path: PathBuf) -> Result<Self, BuildError> {
        std::fs::create_dir_all(&path).map_err(|source| BuildError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verify_user_joins_existing_users() {
        let doc = b"#cloud-config\nusers:\n- default\n- name: admin\nruncmd: [echo]\n";
        let out = with_verify_user(doc, "ssh-ed25519 AAAA k").unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        let users = v["users"].as_sequence().unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(users[2]["name"], serde_yaml::Value::from(VERIFY_USER));
        assert!(out.starts_with("#cloud-config\n"));
    }

    #[test]
    fn check_failures_name_their_layer() {
        let c = named_check("nginx-certbot/https", false, "HTTP 502, expected 200");
        assert_eq!(c.layer.as_deref(), Some("nginx-certbot"));
        assert_eq!(c.name, "check https");
        assert_eq!(c.detail, "HTTP 502, expected 200");
    }

    fn rec(path: &str) -> StateRecord {
        StateRecord {
            path: path.into(),
            owner: "root".into(),
            group: "root".into(),
            mode: "0755".into(),
            layer: "nginx-certbot".into(),
        }
    }

    #[test]
    fn state_paths_must_be_bound_from_the_data_disk() {
        let state = [rec("/etc/letsencrypt"), rec("/var/lib/prometheus")];
        let values = [
            ("state_dev", "/dev/vdb"),
            (
                "state_src",
                "/etc/letsencrypt\t/dev/vdb[/paths/etc/letsencrypt]",
            ),
            ("state_src", "/var/lib/prometheus\t"),
        ];
        let c = state_checks(&values, &state, true);
        assert!(c[0].ok, "{:?}", c[0]);
        assert_eq!(c[0].name, "state path /etc/letsencrypt is on the data disk");
        assert_eq!(c[0].layer.as_deref(), Some("nginx-certbot"));
        assert!(!c[1].ok);
        assert_eq!(c[1].detail, "not a mount point");
        // Without a disk, a state path is no mount of its own.
        let c = state_checks(&values, &state, false);
        assert!(!c[0].ok);
        assert_eq!(c[0].detail, "mounted from /dev/vdb[/paths/etc/letsencrypt]");
        assert!(c[1].ok);
    }

    #[test]
    fn the_inside_lines_quote_each_state_path() {
        let path = "/srv/it's $(x)";
        let s = inside_state(&[rec(path)]);
        let q = crate::shell::quote(path);
        assert!(
            s.contains(&format!(
                "printf 'state_src=%s\\t%s\\n' {q} \"$(findmnt -n -o SOURCE -M {q} 2>/dev/null | tail -n 1)\"\n"
            )),
            "{s}"
        );
        // The shell reads it as written: the path comes back whole.
        let out = std::process::Command::new("sh")
            .args(["-c", &s])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("state_src={path}\t\n")), "{text}");
    }
}
