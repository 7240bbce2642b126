//! The artifact folder `ingot build` writes, as `publish` needs it: the
//! image file and the facts from `manifest.json`.

use super::ReleaseError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub dir: PathBuf,
    pub image_file: PathBuf,
    pub name: String,
    pub version: String,
    pub description: String,
    /// `sha256:<hex>`
    pub digest: String,
    pub distro: String,
    pub os_distro: String,
    pub os_version: String,
    /// `name@version`, in composition order.
    pub layers: Vec<String>,
    pub base_sha256: String,
    /// Where the base came from: a URL, or `build:debian-archive`.
    pub base_source: String,
    pub format: String,
    pub sha256: String,
    pub bytes: u64,
    /// Seconds since the epoch when the build ended, if recorded.
    pub built_at: Option<i64>,
    /// The image file's `properties:` (Glance properties it asks for).
    pub properties: BTreeMap<String, String>,
}

impl Artifact {
    /// Reads an artifact folder (or its `manifest.json`).
    pub fn load(path: &Path) -> Result<Artifact, ReleaseError> {
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            path.to_path_buf()
        };
        let manifest_path = dir.join("manifest.json");
        let bad = |message: String| ReleaseError::Artifact {
            path: manifest_path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                bad("not found: expected an artifact folder written by `ingot build`".into())
            } else {
                bad(e.to_string())
            }
        })?;
        let m: Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let s = |pointer: &str| -> Result<String, ReleaseError> {
            m.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    bad(format!(
                        "{} is missing: was this artifact written by `ingot build`?",
                        &pointer[1..].replace('/', ".")
                    ))
                })
        };
        let build = m.get("build").ok_or_else(|| {
            bad("has no `build` section: this is a `render` output, not a built artifact".into())
        })?;
        let file = s("/build/image/file")?;
        let image_file = dir.join(&file);
        let bytes = build
            .pointer("/image/bytes")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("build.image.bytes is missing".into()))?;
        let on_disk = std::fs::metadata(&image_file).map_err(|e| ReleaseError::Artifact {
            path: image_file.clone(),
            message: e.to_string(),
        })?;
        if on_disk.len() != bytes {
            return Err(ReleaseError::Artifact {
                path: image_file,
                message: format!(
                    "is {} bytes, the manifest says {bytes}: the artifact is damaged, build it again",
                    on_disk.len()
                ),
            });
        }
        let layers = m
            .get("layers")
            .and_then(Value::as_array)
            .map(|ls| {
                ls.iter()
                    .filter_map(|l| {
                        Some(format!(
                            "{}@{}",
                            l["name"].as_str()?,
                            l["version"].as_str()?
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let properties = m
            .pointer("/image/properties")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        let v = v
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string());
                        (k.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Artifact {
            name: s("/image/name")?,
            version: s("/image/version")?,
            description: s("/image/description").unwrap_or_default(),
            digest: s("/input_digest")?,
            distro: s("/image/distro")?,
            os_distro: s("/image/os_distro")?,
            os_version: s("/image/os_version")?,
            layers,
            base_sha256: s("/build/base/sha256")?,
            base_source: s("/build/base/source").unwrap_or_default(),
            format: s("/build/image/format")?,
            sha256: s("/build/image/sha256")?,
            built_at: build
                .get("finished_at")
                .and_then(Value::as_str)
                .and_then(crate::cloud::time::parse_utc),
            bytes,
            properties,
            image_file,
            dir,
        })
    }

    /// The first 12 hex digits of the input digest: what names a build.
    pub fn short_digest(&self) -> &str {
        short(&self.digest)
    }
}

/// `sha256:6847e2d3e3955e…` → `6847e2d3e395`.
pub fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// The virtual size of a qcow2 file from its header (bytes 24..32, big
/// endian), so that `min_disk` is right without running qemu-img.
pub fn qcow2_virtual_size(path: &Path) -> std::io::Result<Option<u64>> {
    use std::io::Read;
    let mut header = [0u8; 32];
    let mut f = std::fs::File::open(path)?;
    match f.read_exact(&mut header) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    if &header[..4] != b"QFI\xfb" {
        return Ok(None);
    }
    Ok(Some(u64::from_be_bytes(
        header[24..32].try_into().expect("8 bytes"),
    )))
}
