//! The result of composition: everything each phase will do, merged and
//! rendered, but not yet shaped as cloud-config.

use super::params::Resolved;
use crate::model::{CheckKind, Distro, Exposure, Mode, Protocol, StatePath};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Composition {
    pub image: ImageInfo,
    /// In execution order.
    pub layers: Vec<LayerInfo>,
    pub params: BTreeMap<String, Resolved>,
    /// Sorted by port, then protocol.
    pub ports: Vec<Port>,
    pub bake: Plan,
    pub boot: Plan,
    /// Every layer's state paths, in layer order then as declared; each
    /// path once, none inside another. The boot document binds them to the
    /// data disk (`render::state`).
    pub state: Vec<StateOut>,
    /// The services of each layer that declares state (as the layer names
    /// them): the units that use its state paths.
    pub state_units: BTreeMap<String, Vec<String>>,
    /// Things that are not errors but are likely mistakes (a secret given
    /// that no layer declares), for the command to print.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub distro: Distro,
    pub base: crate::model::BaseSource,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    pub name: String,
    pub version: String,
    pub description: String,
}

/// One state path and the first layer (in order) that declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateOut {
    #[serde(flatten)]
    pub spec: StatePath,
    pub layer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub port: u16,
    pub protocol: Protocol,
    pub exposure: Exposure,
    pub service: String,
    pub layer: String,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub preserve_sources_list: bool,
    pub apt_sources: BTreeMap<String, AptSourceOut>,
    /// Per layer, in order: "owner question type value" lines.
    pub debconf: Vec<(String, Vec<String>)>,
    /// Sorted, without duplicates.
    pub packages: Vec<String>,
    /// Each package of `packages` and the first layer (in order) that asks
    /// for it, so that a failed install can name who wanted the package.
    pub package_layer: BTreeMap<String, String>,
    /// Packages purged during the bake (declared `absent`).
    pub purge: Vec<String>,
    pub users: Vec<UserOut>,
    pub files: Vec<FileOut>,
    /// Per layer, in order.
    pub commands: Vec<(String, Vec<String>)>,
    /// Image preparation, per layer, in *reverse* order.
    pub prepare: Vec<(String, Vec<String>)>,
    pub enable: Vec<String>,
    pub restart: Vec<String>,
    /// Allowed top-level keys, in first-seen order.
    pub cloud_config: Vec<(String, serde_yaml::Value)>,
    pub checks: Vec<CheckOut>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSourceOut {
    pub source: String,
    pub key: Option<String>,
    pub layer: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserOut {
    pub name: String,
    pub groups: Vec<String>,
    pub shell: Option<String>,
    pub sudo: Option<String>,
    pub system: bool,
    pub gecos: Option<String>,
    pub home: Option<String>,
    pub ssh_keys: Vec<String>,
    pub layer: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOut {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: Mode,
    pub owner: String,
    pub defer: bool,
    pub layer: String,
}

/// A health check as rendered. It never holds a secret's value: where a
/// secret parameter was used, the text holds its marker
/// ([`super::secret_marker`]) and `secrets` names the parameter; the
/// check script on the instance puts the value back from the environment
/// (`render::checks`). So manifests and `--json` show which secret a check
/// uses, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOut {
    pub layer: String,
    pub name: String,
    #[serde(flatten)]
    pub kind: CheckKind,
    pub timeout: u32,
    /// Secret parameters the check uses, by name, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

impl CheckOut {
    pub fn id(&self) -> String {
        format!("{}/{}", self.layer, self.name)
    }
}
