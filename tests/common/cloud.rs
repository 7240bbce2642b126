//! Tests against the real Keystone + Glance (and Nova) of the playground
//! that `scripts/playground/start` runs. Without one, these tests say so
//! and pass, unless `INGOT_REQUIRE_PLAYGROUND=1` (CI sets it) makes a
//! missing playground a failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Playground {
    pub dir: PathBuf,
    pub clouds: PathBuf,
}

impl Playground {
    /// The running playground, or `None` (and a note on stderr).
    pub fn get() -> Option<Playground> {
        let dir = std::env::var_os("INGOT_PLAYGROUND")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/ingot-playground"));
        let clouds = dir.join("clouds.yaml");
        let status = Command::new(super::repo_root().join("scripts/playground/status"))
            .arg(&dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if clouds.is_file() && status {
            return Some(Playground { dir, clouds });
        }
        if std::env::var("INGOT_REQUIRE_PLAYGROUND").as_deref() == Ok("1") {
            panic!(
                "no playground answers in {} and INGOT_REQUIRE_PLAYGROUND=1: run scripts/playground/start",
                dir.display()
            );
        }
        eprintln!(
            "SKIPPED: no playground in {} (scripts/playground/start runs one)",
            dir.display()
        );
        None
    }

    /// A setting of the last start, from DIR/ports.env.
    fn setting(&self, key: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join("ports.env")).ok()?;
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{key}="))
                .map(str::to_string)
        })
    }

    /// Nova runs too (`start --with-nova`).
    pub fn has_nova(&self) -> bool {
        self.setting("INGOT_PLAYGROUND_NOVA").as_deref() == Some("1")
    }

    /// Designate runs too (`start --with-dns`, on by default with Nova).
    pub fn has_dns(&self) -> bool {
        self.has_nova() && self.setting("INGOT_PLAYGROUND_DNS").as_deref() == Some("1")
    }

    /// Cinder runs too (`start --with-cinder`).
    pub fn has_cinder(&self) -> bool {
        self.has_nova() && self.setting("INGOT_PLAYGROUND_CINDER").as_deref() == Some("1")
    }

    /// `http://127.0.0.1:PORT/v3`
    pub fn keystone_url(&self) -> String {
        let port = self
            .setting("INGOT_KEYSTONE_PORT")
            .unwrap_or_else(|| "5000".into());
        format!("http://127.0.0.1:{port}/v3")
    }

    /// `ingot` with this playground's clouds.yaml and no OS_* variables
    /// from the developer's shell.
    pub fn ingot(&self) -> Command {
        let mut c = super::ingot();
        for (k, _) in std::env::vars() {
            if k.starts_with("OS_") {
                c.env_remove(k);
            }
        }
        c.env("OS_CLIENT_CONFIG_FILE", &self.clouds);
        c
    }

    /// A value from DIR/secrets.env or DIR/appcred.env (test assertions
    /// that a secret never shows up need the secret).
    pub fn secret(&self, key: &str) -> String {
        for file in ["secrets.env", "appcred.env"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(file)) {
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix(&format!("{key}=")) {
                        return v.trim_matches(['\'', '"']).to_string();
                    }
                }
            }
        }
        panic!("{key} not found in the playground's env files")
    }

    /// The `python-openstackclient` CLI on this playground, for checks
    /// made by a tool other than ingot.
    pub fn openstack(&self, cloud: &str, args: &[&str]) -> serde_json::Value {
        let out = Command::new("openstack")
            .env("OS_CLIENT_CONFIG_FILE", &self.clouds)
            .arg("--os-cloud")
            .arg(cloud)
            .args(args)
            .args(["-f", "json"])
            .output()
            .expect("openstack CLI");
        assert!(
            out.status.success(),
            "openstack {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        // `--wait` prints its progress before the JSON.
        let json = text.find(['{', '[']).map(|i| &text[i..]).unwrap_or("");
        serde_json::from_str(json).unwrap_or_else(|e| panic!("openstack {args:?}: {e}: {text}"))
    }
}

/// An image name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t-{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An artifact folder as `ingot build` writes it, with `data` as the image
/// file (a raw disk, so that any bytes are a valid image). The manifest is
/// the real format; only the bake did not happen.
pub fn artifact(root: &Path, name: &str, version: &str, data: &[u8]) -> PathBuf {
    use sha2::Digest;
    let sha256 = hex(&sha2::Sha256::digest(data));
    // Distinct inputs give distinct digests, as real builds do.
    let digest = hex(&sha2::Sha256::digest(format!("{name}/{version}/{sha256}")));
    let dir = root.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("image.raw"), data).unwrap();
    let manifest = serde_json::json!({
        "format": 1,
        "ingot_version": "0.1.0",
        "image": {
            "name": name, "version": version, "description": format!("test image {name}"),
            "distro": "debian-12", "os_distro": "debian", "os_version": "12",
            "base": {"build": {"recipe": "debian-archive"}},
            // min_ram fits the playground's ingot.tiny flavor: Nova refuses
            // to boot an image on a flavor below its min_ram.
            "properties": {"hw_disk_bus": "scsi", "hw_scsi_model": "virtio-scsi", "min_ram": "512"}
        },
        "input_digest": format!("sha256:{digest}"),
        "layers": [{"name": "base", "version": "1.0.0"}],
        "params": {}, "secrets": [], "ports": [],
        "user_data": {
            "bake": {"file": "bake.user-data", "bytes": 0, "gzip": false, "sha256": "0".repeat(64)},
            "boot": {"file": "boot.user-data", "bytes": 0, "gzip": false}
        },
        "checks": {"bake": [], "boot": []},
        "build": {
            "builder": "qemu",
            "base": {"sha256": "b".repeat(64), "source": "build:debian-archive", "format": "qcow2"},
            "image": {"file": "image.raw", "format": "raw", "compression": "none",
                      "sha256": sha256, "bytes": data.len()},
            "cloud_init_status": 0,
            "finished_at": "2026-11-29T10:50:47Z",
            "seconds": {"base": 0.0, "cloud_init": null, "bake": 0.0, "convert": 0.0, "hash": 0.0, "total": 0.0}
        }
    });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    dir
}

/// Bytes that differ per call, so no two test images share a digest.
pub fn data(len: usize) -> Vec<u8> {
    static SEED: AtomicU32 = AtomicU32::new(1);
    let mut x = SEED.fetch_add(1, Ordering::Relaxed) as u64
        ^ u64::from(std::process::id()) << 32
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    (0..len)
        .map(|_| {
            // xorshift: fast, and enough to make every image unique.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha512_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha512::digest(data))
}
