//! Glance as the release store. A release is one Glance image carrying
//! ingot's properties; versions are immutable, channels (`stable`,
//! `testing`) are tags that `promote` moves. Everything here is generic
//! over the service traits of [`crate::cloud`], and decisions (which
//! release a selector names, what prune deletes) are pure functions.
//!
//! - [`properties`]: the image record: name, ingot, `os_*`, `hw_*`,
//!   SCS-0102 properties.
//! - [`publish`]: idempotent, verified, cancellable upload.
//! - [`catalog`]: the releases of an image, with channels and servers.
//! - [`promote`] and [`prune`].

pub mod catalog;
mod error;
pub mod promote;
pub mod properties;
pub mod prune;
pub mod publish;
mod stream;

pub use catalog::Release;
pub use stream::Hashes;

/// Reads a file as an upload stream; its hashes arrive once it was read
/// to its end.
pub fn open_stream(
    path: &std::path::Path,
) -> std::io::Result<(stream::FileStream, tokio::sync::oneshot::Receiver<Hashes>)> {
    stream::open(
        path,
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
    )
}
pub use error::{Cleanup, ReleaseError};

/// Every image ingot publishes carries this tag.
pub const TAG: &str = "ingot";
/// A channel `stable` is the tag `channel:stable`.
pub const CHANNEL_PREFIX: &str = "channel:";

pub const P_IMAGE: &str = "ingot_image";
pub const P_VERSION: &str = "ingot_version";
pub const P_DIGEST: &str = "ingot_digest";
pub const P_LAYERS: &str = "ingot_layers";
pub const P_BASE: &str = "ingot_base_sha256";
/// Where the base came from, when its sha256 is unknown (`glance:<id>`).
pub const P_BASE_SOURCE: &str = "ingot_base_source";
pub const P_SHA256: &str = "ingot_sha256";
pub const P_TOOL: &str = "ingot_tool";
/// The `--set` values the image was rendered with, as a JSON object; absent
/// when there were none. A deploy renders the same image's boot from it.
pub const P_SET: &str = "ingot_set";

/// A channel name: what a tag can hold and a person can type.
pub fn check_channel(name: &str) -> Result<(), ReleaseError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ReleaseError::BadChannel {
            name: name.to_string(),
        })
    }
}
