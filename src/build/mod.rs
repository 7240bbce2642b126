//! Building golden images. The command layer renders; a builder is handed
//! what was rendered, bakes it in a guest, gates the result on readiness
//! ([`gate`]: cloud-init's result, every layer's checks, the seal) and
//! records it in the manifest's build section.
//!
//! - [`QemuBuilder`]: a local QEMU guest; the golden image becomes an
//!   artifact folder (see [`crate::artifact`]).
//! - [`verify`]: boots a built artifact as a new instance and checks it.
//!
//! Every builder watches its guest through the same console protocol
//! ([`crate::protocol`]) and the same loop ([`gate::watch`]).

mod error;
pub mod gate;
pub mod openstack;
mod qemu;
mod verify;

pub use error::BuildError;
pub use gate::CLOUD_INIT_DEGRADED;
pub use qemu::{QemuBuilder, QemuOptions, BAKE_VENDOR_DATA};
pub use verify::{verify, DataDiskChoice, VerifyOptions, VerifyReport};

use crate::artifact::Artifact;

/// What a finished build produced.
pub struct Built {
    pub artifact: Artifact,
    /// False when an artifact with the same digest was found and reused.
    pub built: bool,
}
