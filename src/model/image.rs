//! `images/<name>.yaml`: a base, ordered layers, parameter values and
//! image properties.

use super::Distro;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub schema: u32,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub base: Base,
    pub layers: Vec<String>,
    #[serde(default)]
    pub params: BTreeMap<String, serde_yaml::Value>,
    /// Extra Glance properties, written as given.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, try_from = "RawBase")]
pub struct Base {
    pub distro: Distro,
    pub source: BaseSource,
}

/// Where the base image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseSource {
    /// An official cloud image, checked against its published SHA256SUMS.
    Url { url: String, checksums_url: String },
    /// An image already in Glance, by name.
    Glance { name: String },
    /// Built locally by `ingot base` (only `debian-archive` today).
    Build { recipe: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBase {
    distro: Distro,
    url: Option<String>,
    checksums_url: Option<String>,
    glance: Option<String>,
    build: Option<String>,
}

impl TryFrom<RawBase> for Base {
    type Error = String;
    fn try_from(raw: RawBase) -> Result<Self, String> {
        let source = match (raw.url, raw.checksums_url, raw.glance, raw.build) {
            (Some(url), Some(checksums_url), None, None) => BaseSource::Url { url, checksums_url },
            (Some(_), None, None, None) => return Err(
                "base `url` needs `checksums_url` too: a downloaded base image is always verified"
                    .into(),
            ),
            (None, None, Some(name), None) => BaseSource::Glance { name },
            (None, None, None, Some(recipe)) => {
                if recipe != "debian-archive" {
                    return Err(format!(
                        "unknown base build `{recipe}`: expected `debian-archive`"
                    ));
                }
                if raw.distro != Distro::Debian12 {
                    return Err("base build `debian-archive` makes a debian-12 image only".into());
                }
                BaseSource::Build { recipe }
            }
            _ => {
                return Err(
                    "base needs exactly one source: `url` + `checksums_url`, `glance` or `build`"
                        .into(),
                )
            }
        };
        Ok(Base {
            distro: raw.distro,
            source,
        })
    }
}
