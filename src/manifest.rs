//! `manifest.json`: the one record of what an image is and how it was
//! built, shared by every stage. `render` writes its first part (the
//! inputs, the input digest, the user-data documents, ports and checks); a
//! builder adds [`BuildRecord`]; `verify`, `publish` and the release store
//! read it back through [`Manifest::load`], which names the file and the
//! field when something is missing.
//!
//! Free of secrets by construction: secret parameters appear by name only
//! ([`SecretRef`]), and the boot document, which may hold secrets, is
//! described by its size alone.
//!
//! The field order here is the order of `manifest.json` (golden files pin
//! it); `format` changes only when an older reader could misread a newer
//! file.

use crate::model::{BaseSource, Distro, Exposure, Protocol};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const FORMAT: u32 = 1;
pub const FILE_NAME: &str = "manifest.json";

/// Manifests are small; anything bigger is not one of ours.
const MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// The ingot that rendered it.
    pub ingot_version: String,
    pub image: ImageRecord,
    /// `sha256:<hex>` over everything that shapes the image.
    pub input_digest: String,
    /// In composition order.
    pub layers: Vec<LayerRef>,
    /// Non-secret parameters with their resolved values.
    pub params: BTreeMap<String, Value>,
    /// The `--set` values it was rendered with (the last of a key wins):
    /// with the image file and the layers, what reproduces this render, so
    /// that a deploy can render the same image's boot for one instance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sets: BTreeMap<String, String>,
    pub secrets: Vec<SecretRef>,
    pub ports: Vec<PortRecord>,
    /// The layers' state paths (`state:` in layer.yaml), in composition
    /// order: what `verify` binds to a data disk and a deploy keeps on the
    /// deployment's volume. Absent when no layer declares state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<StateRecord>,
    pub user_data: UserData,
    pub checks: Checks,
    /// Written by a builder; absent in a `render` output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    pub name: String,
    pub version: String,
    pub description: String,
    pub distro: Distro,
    /// Glance's standard `os_distro` and `os_version` for this distro.
    pub os_distro: String,
    pub os_version: String,
    pub base: BaseSource,
    /// The image file's `properties:`, for Glance.
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerRef {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub name: String,
    /// Whether a value was given when this was rendered.
    pub provided: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRecord {
    pub port: u16,
    pub protocol: Protocol,
    pub exposure: Exposure,
    pub service: String,
    pub layer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRecord {
    pub path: String,
    pub owner: String,
    pub group: String,
    /// Octal, as in layer.yaml (`"0755"`).
    pub mode: String,
    pub layer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserData {
    pub bake: Document,
    pub boot: Document,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub file: String,
    pub bytes: usize,
    pub gzip: bool,
    /// Of the bake document only: the boot document may hold secrets, and a
    /// hash of a short secret is a way to guess it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Each phase's health checks as the composition recorded them. Read by
/// people and tools; no stage acts on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    pub bake: Vec<Value>,
    pub boot: Vec<Value>,
}

/// What a builder adds: where the image came from, where it is now, how
/// the bake ended and how long each part took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRecord {
    pub builder: BuilderKind,
    pub base: BaseRecord,
    /// The golden image file in the artifact folder (the qemu builder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageFile>,
    /// The snapshot in Glance (the openstack builder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glance: Option<GlanceImage>,
    /// `cloud-init status` of the bake: 0 done, 2 degraded (when allowed).
    pub cloud_init_status: i32,
    /// RFC 3339, UTC; the SCS-0102 `image_build_date` of its release.
    pub finished_at: String,
    pub seconds: Seconds,
}

impl BuildRecord {
    /// When the build ended, in seconds since the epoch.
    pub fn built_at(&self) -> Option<i64> {
        crate::cloud::time::parse_utc(&self.finished_at)
    }

    /// The golden image's format (`qcow2`, `raw`), wherever it is.
    pub fn disk_format(&self) -> &str {
        match (&self.image, &self.glance) {
            (Some(file), _) => &file.format,
            (None, Some(g)) => &g.disk_format,
            (None, None) => "qcow2",
        }
    }

    /// The sha256 of the golden image's bytes, wherever they are.
    pub fn sha256(&self) -> &str {
        match (&self.image, &self.glance) {
            (Some(file), _) => &file.sha256,
            (None, Some(g)) => &g.sha256,
            (None, None) => "",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderKind {
    Qemu,
    Openstack,
}

impl BuilderKind {
    pub fn name(self) -> &'static str {
        match self {
            BuilderKind::Qemu => "qemu",
            BuilderKind::Openstack => "openstack",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseRecord {
    /// Of the base image's bytes; unknown for a provider's image in Glance
    /// that ingot never downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Glance's `os_hash_value` of a base image in Glance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha512: Option<String>,
    /// A URL, `build:debian-archive`, or `glance:<id>`.
    pub source: String,
    pub format: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFile {
    /// Relative to the artifact folder.
    pub file: String,
    pub format: String,
    pub compression: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlanceImage {
    pub id: String,
    pub name: String,
    pub disk_format: String,
    pub bytes: u64,
    /// Of the data as Glance served it, checked against `os_hash_value`.
    pub sha256: String,
    pub sha512: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seconds {
    pub base: f64,
    pub cloud_init: Option<f64>,
    pub bake: f64,
    pub convert: f64,
    pub hash: f64,
    pub total: f64,
}

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("{}: not found: expected an artifact folder written by `ingot build`", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: is larger than {} MiB: not a manifest", path.display(), MAX_BYTES / 1024 / 1024)]
    TooLarge { path: PathBuf },
    #[error("{}: {}{message}", path.display(), if field.is_empty() { String::new() } else { format!("field `{field}`: ") })]
    Invalid {
        path: PathBuf,
        /// Where in the document, e.g. `build.image`; empty at the top.
        field: String,
        message: String,
    },
    #[error("{}: manifest format {found}, this ingot reads format {FORMAT}: build the artifact again", path.display())]
    Format { path: PathBuf, found: u32 },
}

impl Manifest {
    /// Reads and checks a `manifest.json`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ManifestError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                ManifestError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| ManifestError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(ManifestError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Manifest::parse(&bytes, path)
    }

    /// Parses manifest text; `path` names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest, ManifestError> {
        // The format first: a newer format may not parse as this one at all,
        // and "build it again" is the useful answer then.
        #[derive(Deserialize)]
        struct Head {
            format: Option<u32>,
        }
        if let Ok(Head {
            format: Some(found),
        }) = serde_json::from_slice::<Head>(bytes)
        {
            if found != FORMAT {
                return Err(ManifestError::Format {
                    path: path.to_path_buf(),
                    found,
                });
            }
        }
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            ManifestError::Invalid {
                path: path.to_path_buf(),
                field: if field == "." { String::new() } else { field },
                message: e.into_inner().to_string(),
            }
        })
    }

    /// Pretty JSON with a final newline, as written to disk.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        text.push(b'\n');
        text
    }

    /// The first 12 hex digits of the input digest: what names a build.
    pub fn short_digest(&self) -> &str {
        short_digest(&self.input_digest)
    }

    /// `name@version` of each layer, in composition order.
    pub fn layer_list(&self) -> Vec<String> {
        self.layers
            .iter()
            .map(|l| format!("{}@{}", l.name, l.version))
            .collect()
    }
}

/// `sha256:6847e2d3e3955e…` → `6847e2d3e395`.
pub fn short_digest(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden() -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/fixture/manifest.json"),
        )
        .unwrap()
    }

    #[test]
    fn a_rendered_manifest_reads_back_byte_for_byte() {
        let text = golden();
        let m = Manifest::parse(&text, Path::new("m.json")).unwrap();
        assert_eq!(m.image.name, "web");
        assert!(m.build.is_none());
        assert_eq!(m.to_bytes(), text);
    }

    #[test]
    fn a_missing_field_names_the_file_and_the_field() {
        let mut v: Value = serde_json::from_slice(&golden()).unwrap();
        v["user_data"]["bake"]
            .as_object_mut()
            .unwrap()
            .remove("file");
        let err = Manifest::parse(v.to_string().as_bytes(), Path::new("a/manifest.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("a/manifest.json: field `user_data.bake`: missing field `file`"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_type_and_an_unknown_field_are_named() {
        let mut v: Value = serde_json::from_slice(&golden()).unwrap();
        v["ports"][1]["port"] = "eighty".into();
        let err = Manifest::parse(v.to_string().as_bytes(), Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("m.json: field `ports[1].port`: invalid type"),
            "{err}"
        );

        let mut v: Value = serde_json::from_slice(&golden()).unwrap();
        v["image"]["nmae"] = "x".into();
        let err = Manifest::parse(v.to_string().as_bytes(), Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("m.json: field `image.nmae`: unknown field `nmae`"),
            "{err}"
        );
    }

    #[test]
    fn another_format_says_build_again() {
        let err = Manifest::parse(br#"{"format": 7}"#, Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "m.json: manifest format 7, this ingot reads format 1: build the artifact again"
        );
    }

    #[test]
    fn short_digests() {
        assert_eq!(short_digest("sha256:6847e2d3e3955e6b"), "6847e2d3e395");
        assert_eq!(short_digest("abc"), "abc");
    }
}
