//! Base images in a cache keyed by content hash: official cloud images
//! downloaded and verified against their published SHA256SUMS, or a Debian
//! 12 base built from Debian's archive by an embedded recipe.
//!
//! Layout under the cache root:
//! `bases/<sha256>/{disk.qcow2|disk.img, vmlinuz, initrd.img, base.json}`
//! and `bases/index/<key>` naming the hash a source resolved to, so a second
//! `ingot base` or `ingot build` needs no network.

mod download;

use crate::model::{BaseSource, Distro};
use crate::progress::Progress;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokio::io::AsyncBufReadExt;

/// The recipe for `build: debian-archive`, shipped inside the binary.
pub const DEBIAN_RECIPE: &str = include_str!("../../base/debian-12.sh");

#[derive(Debug, Error)]
pub enum BaseError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("downloading {url}: {message}")]
    Download { url: String, message: String },
    #[error("{checksums_url} lists no checksum for `{file}`")]
    NotListed { checksums_url: String, file: String },
    #[error("{url}: sha256 is {actual}, but {checksums_url} says {expected}; the download was discarded")]
    Mismatch {
        url: String,
        checksums_url: String,
        expected: String,
        actual: String,
    },
    #[error("the base image recipe failed ({status}); its output is in {}", log.display())]
    Recipe { status: String, log: PathBuf },
    #[error("image base `{name}` is an image in Glance: it serves the openstack builder (`--builder openstack`), not the local qemu builder")]
    InGlance { name: String },
}

/// A base image in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseImage {
    pub sha256: String,
    /// `qcow2` or `raw`, from the file's magic bytes.
    pub format: String,
    pub file: String,
    pub source: String,
    pub distro: Distro,
    /// Kernel and initrd beside the disk, for direct kernel boot.
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    #[serde(skip)]
    pub dir: PathBuf,
}

impl BaseImage {
    pub fn disk(&self) -> PathBuf {
        self.dir.join(&self.file)
    }
}

pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: PathBuf) -> Self {
        Cache { root }
    }

    /// `$INGOT_CACHE`, else `$XDG_CACHE_HOME/ingot`, else `~/.cache/ingot`.
    pub fn default_root() -> PathBuf {
        if let Some(p) = std::env::var_os("INGOT_CACHE") {
            return p.into();
        }
        if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(p).join("ingot");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".cache/ingot")
    }

    fn bases(&self) -> PathBuf {
        self.root.join("bases")
    }

    fn index(&self, key: &str) -> PathBuf {
        self.bases().join("index").join(key)
    }

    /// The cached base a source resolved to before, if it is still whole.
    pub fn lookup(&self, distro: Distro, source: &BaseSource) -> Option<BaseImage> {
        let key = key(distro, source);
        let sha = std::fs::read_to_string(self.index(&key)).ok()?;
        self.load(sha.trim())
    }

    fn load(&self, sha: &str) -> Option<BaseImage> {
        let dir = self.bases().join(sha);
        let text = std::fs::read_to_string(dir.join("base.json")).ok()?;
        let mut img: BaseImage = serde_json::from_str(&text).ok()?;
        img.dir = dir;
        img.disk().is_file().then_some(img)
    }

    /// The cached base, or obtains it: download and verify, or build.
    pub async fn obtain(
        &self,
        distro: Distro,
        source: &BaseSource,
        progress: &Progress,
    ) -> Result<BaseImage, BaseError> {
        if let Some(found) = self.lookup(distro, source) {
            progress.say(&format!("base image cached: {}", found.disk().display()));
            return Ok(found);
        }
        let staging = self
            .bases()
            .join(format!(".staging-{}", std::process::id()));
        let _cleanup = RemoveOnDrop(staging.clone());
        mkdir(&staging)?;
        let (file, source_text, kernel) = match source {
            BaseSource::Glance { .. } => {
                return Err(BaseError::InGlance {
                    name: source.label(),
                })
            }
            BaseSource::Url { url, checksums_url } => {
                let expected = download::expected_sha256(url, checksums_url).await?;
                if let Some(found) = self.load(&expected) {
                    self.remember(distro, source, &expected)?;
                    return Ok(found);
                }
                let file = staging.join("disk.img");
                download::fetch_verified(url, checksums_url, &expected, &file, progress).await?;
                (file, url.clone(), false)
            }
            BaseSource::Build { recipe } => {
                build_recipe(&staging, progress).await?;
                (staging.join("disk.qcow2"), format!("build:{recipe}"), true)
            }
        };
        progress.say("hashing the base image");
        let sha = sha256_file(&file)?;
        let format = detect_format(&file)?;
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let img = BaseImage {
            sha256: sha.clone(),
            format,
            file: name,
            source: source_text,
            distro,
            kernel: kernel.then(|| "vmlinuz".to_string()),
            initrd: kernel.then(|| "initrd.img".to_string()),
            dir: PathBuf::new(),
        };
        let json = serde_json::to_string_pretty(&img).expect("json");
        write(&staging.join("base.json"), json.as_bytes())?;
        let dest = self.bases().join(&sha);
        if dest.exists() {
            // Built or downloaded concurrently: the same content is there.
        } else {
            std::fs::rename(&staging, &dest).map_err(|source| BaseError::Io {
                path: dest.clone(),
                source,
            })?;
        }
        self.remember(distro, source, &sha)?;
        let found = self.load(&sha).ok_or_else(|| BaseError::Io {
            path: dest.clone(),
            source: std::io::Error::other("base image vanished from the cache"),
        })?;
        progress.say(&format!(
            "base image ready: {} (sha256 {sha})",
            found.disk().display()
        ));
        Ok(found)
    }

    fn remember(&self, distro: Distro, source: &BaseSource, sha: &str) -> Result<(), BaseError> {
        let path = self.index(&key(distro, source));
        mkdir(path.parent().unwrap())?;
        write(&path, sha.as_bytes())
    }
}

/// A file-name-safe key for a source.
fn key(distro: Distro, source: &BaseSource) -> String {
    match source {
        // A changed recipe makes a different base.
        BaseSource::Build { recipe } => {
            let h = Sha256::digest(DEBIAN_RECIPE.as_bytes());
            format!("{}-{recipe}-{}", distro.name(), hex(&h[..6]))
        }
        BaseSource::Url { url, .. } => {
            let h = Sha256::digest(url.as_bytes());
            format!("{}-url-{}", distro.name(), hex(&h[..8]))
        }
        BaseSource::Glance { .. } => format!("glance-{}", source.label()),
    }
}

async fn build_recipe(staging: &Path, progress: &Progress) -> Result<(), BaseError> {
    let script = staging.join("recipe.sh");
    write(&script, DEBIAN_RECIPE.as_bytes())?;
    // The recipe runs itself again as mmdebstrap's customize hook.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).map_err(
            |source| BaseError::Io {
                path: script.clone(),
                source,
            },
        )?;
    }
    let out = staging.join("out");
    let log = staging
        .parent()
        .unwrap()
        .join(format!("recipe-{}.log", std::process::id()));
    progress.say("building a Debian 12 base image from Debian's archive (about a minute)");
    let log_file = std::fs::File::create(&log).map_err(|source| BaseError::Io {
        path: log.clone(),
        source,
    })?;
    let mut child = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log_file)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BaseError::Io {
            path: script.clone(),
            source,
        })?;
    // The recipe's own progress lines (`[base] ...`) are shown as they come;
    // everything it prints is also kept in the log for a failure report.
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut kept = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .map_err(|source| BaseError::Io {
            path: log.clone(),
            source,
        })?;
    // Dropped with this future on Ctrl-C: the recipe's process group gets
    // SIGTERM and time to clean its temporary folders and mounts.
    let _group = ProcessGroup(child.id());
    while let Ok(Some(line)) = lines.next_line().await {
        use std::io::Write;
        let _ = writeln!(kept, "{line}");
        if let Some(msg) = line.strip_prefix("[base] ") {
            progress.say(msg);
        }
    }
    let status = child.wait().await.map_err(|source| BaseError::Io {
        path: script.clone(),
        source,
    })?;
    if !status.success() {
        return Err(BaseError::Recipe {
            status: status.to_string(),
            log,
        });
    }
    let _ = std::fs::remove_file(&log);
    for f in ["disk.qcow2", "vmlinuz", "initrd.img"] {
        let from = out.join(f);
        let to = staging.join(f);
        std::fs::rename(&from, &to).map_err(|source| BaseError::Io { path: from, source })?;
    }
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String, BaseError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|source| BaseError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|source| BaseError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn detect_format(path: &Path) -> Result<String, BaseError> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|source| BaseError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let n = f.read(&mut magic).unwrap_or(0);
    Ok(if n == 4 && magic == *b"QFI\xfb" {
        "qcow2"
    } else {
        "raw"
    }
    .into())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mkdir(path: &Path) -> Result<(), BaseError> {
    std::fs::create_dir_all(path).map_err(|source| BaseError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BaseError> {
    std::fs::write(path, bytes).map_err(|source| BaseError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A process group that is asked to stop (SIGTERM) when this is dropped
/// before the group ended, and given up to 20 s to clean up after itself.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let Some(pid) = self.0 else { return };
        let group = format!("-{pid}");
        let alive = || {
            std::process::Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !alive() {
            return;
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        for _ in 0..40 {
            if !alive() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
    }
}

/// Removes a staging folder however the operation ends; a folder already
/// renamed into the cache is no longer there to remove.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
