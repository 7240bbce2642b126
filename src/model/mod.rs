//! The input files as typed values: layers (`layers/<name>/layer.yaml`) and
//! images (`images/<name>.yaml`), loaded strictly.
//!
//! Everything that can be checked while reading one file is checked here by
//! serde (unknown keys, types, enums, octal modes, port ranges), so the error
//! carries the file, line and column. Rules that need several files (order,
//! conflicts, parameters) belong to `compose`.

pub mod deployment;
mod error;
mod image;
pub mod layer;
mod load;
pub mod names;
mod param;
pub mod yaml;

pub use error::{LoadError, StateError};
pub use image::{Base, BaseSource, Image};
pub use layer::{
    Apt, AptSource, Check, CheckKind, CloudConfigSpec, Command, Commands, Exposure, FileBody,
    FileSpec, KeyRef, Layer, Mode, Packages, PortSpec, PortValue, Protocol, Restart, Service,
    StatePath, User, STATE_MOUNT,
};
pub use load::{list_layers, load_image, load_layer, LayerSource, Loaded};
pub use param::{ParamSpec, ParamType};

use serde::{Deserialize, Serialize};
use std::fmt;

/// The version of the layer and image file format this ingot reads. It is
/// part of every input digest, so a format change rebuilds every image.
pub const SCHEMA_VERSION: u32 = 1;

/// A base distribution an image can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum Distro {
    #[serde(rename = "ubuntu-24.04")]
    Ubuntu2404,
    #[serde(rename = "debian-12")]
    Debian12,
}

impl Distro {
    pub const ALL: [Distro; 2] = [Distro::Ubuntu2404, Distro::Debian12];

    pub fn name(self) -> &'static str {
        match self {
            Distro::Ubuntu2404 => "ubuntu-24.04",
            Distro::Debian12 => "debian-12",
        }
    }

    pub fn family(self) -> &'static str {
        match self {
            Distro::Ubuntu2404 => "ubuntu",
            Distro::Debian12 => "debian",
        }
    }

    pub fn codename(self) -> &'static str {
        match self {
            Distro::Ubuntu2404 => "noble",
            Distro::Debian12 => "bookworm",
        }
    }

    /// `os_version` as Glance's standard property expects it.
    pub fn version(self) -> &'static str {
        match self {
            Distro::Ubuntu2404 => "24.04",
            Distro::Debian12 => "12",
        }
    }
}

impl fmt::Display for Distro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The two phases of a golden image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Runs once while the image is built; ends sealed and powered off.
    Bake,
    /// Runs on each new instance's first boot.
    Boot,
}

impl Phase {
    pub const ALL: [Phase; 2] = [Phase::Bake, Phase::Boot];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Bake => "bake",
            Phase::Boot => "boot",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
