//! `images/<name>.yaml`: a base, ordered layers, parameter values and
//! image properties.

use super::names::{self, LayerName, PropertyName, PropertyValue};
use super::Distro;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub schema: u32,
    /// Checked by `load` (names::ImageName), where its line is known:
    /// serde_yaml loses the place of top-level values.
    pub name: String,
    /// Checked by `load` (names::Version).
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub base: Base,
    #[serde(deserialize_with = "names::list::<_, LayerName>")]
    pub layers: Vec<String>,
    #[serde(default)]
    pub params: BTreeMap<String, serde_yaml::Value>,
    /// Extra Glance properties, written as given; names ingot or Glance
    /// set themselves are refused here, not at publish.
    #[serde(
        default,
        deserialize_with = "names::checked_values::<_, PropertyName, PropertyValue>"
    )]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, try_from = "RawBase")]
pub struct Base {
    pub distro: Distro,
    pub source: BaseSource,
}

/// Where the base image comes from. Deserialize reads it back from a
/// manifest, in the shape Serialize writes (image files use `RawBase`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseSource {
    /// An official cloud image, checked against its published SHA256SUMS.
    Url { url: String, checksums_url: String },
    /// An image already in Glance (the openstack builder's base): by name,
    /// by id, or the newest active image with these properties.
    Glance {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        properties: BTreeMap<String, String>,
    },
    /// Built locally by `ingot base` (only `debian-archive` today).
    Build { recipe: String },
}

impl BaseSource {
    /// How people name this base: a URL, `build:<recipe>`, or the Glance
    /// selector (`glance name=…`, `glance id=…`, `glance os_distro=debian,…`).
    pub fn label(&self) -> String {
        match self {
            BaseSource::Url { url, .. } => url.clone(),
            BaseSource::Build { recipe } => format!("build:{recipe}"),
            BaseSource::Glance {
                name,
                id,
                properties,
            } => match (name, id) {
                (Some(n), _) => format!("glance name={n}"),
                (None, Some(i)) => format!("glance id={i}"),
                (None, None) => format!(
                    "glance {}",
                    properties
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBase {
    distro: Distro,
    url: Option<String>,
    checksums_url: Option<String>,
    glance: Option<RawGlance>,
    build: Option<String>,
}

/// `glance: NAME`, or `glance: {name: …}`, `{id: …}`, `{properties: {…}}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawGlance {
    Name(String),
    Select(GlanceSelect),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlanceSelect {
    name: Option<String>,
    id: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
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
            (None, None, Some(RawGlance::Name(name)), None) => BaseSource::Glance {
                name: Some(name),
                id: None,
                properties: BTreeMap::new(),
            },
            (None, None, Some(RawGlance::Select(g)), None) => {
                let given = [g.name.is_some(), g.id.is_some(), !g.properties.is_empty()];
                if given.iter().filter(|g| **g).count() != 1 {
                    return Err(
                        "base `glance` names one image: `name`, `id` or `properties` (the newest active image that has them all)"
                            .into(),
                    );
                }
                BaseSource::Glance {
                    name: g.name,
                    id: g.id,
                    properties: g.properties,
                }
            }
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
