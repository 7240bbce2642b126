//! The input digest: sha256 over everything that shapes an image, so that an
//! image whose digest already exists need not be built again.
//!
//! Covered: ingot's format versions, the user-data template, the image file,
//! every file of every listed layer (layer.yaml, templates, keys; not its
//! documentation), and the non-secret `--set` values. Not covered: secrets
//! (they only reach the boot phase, never the image) and file names or
//! locations (moving a checkout does not change an image). Each item is
//! framed with its length so that no two different inputs hash alike.

use crate::compose::Overrides;
use crate::model::{Loaded, SCHEMA_VERSION};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Bump when ingot renders different output for the same inputs (2: the
/// check scripts give each attempt the time left of its limit; 3: the boot
/// document waits for a data volume still held by another server).
pub const RENDER_FORMAT: u32 = 3;

pub fn input_digest(loaded: &Loaded, overrides: &Overrides) -> String {
    let mut h = Framed(Sha256::new());
    h.item(b"ingot-input-digest");
    h.item(format!("schema {SCHEMA_VERSION} render {RENDER_FORMAT}").as_bytes());
    h.item(super::USER_DATA_TEMPLATE.as_bytes());
    h.item(&loaded.image_bytes);
    for source in &loaded.layers {
        h.item(source.layer.name.as_bytes());
        h.item(&(source.assets.len() as u64).to_le_bytes());
        for (name, bytes) in &source.assets {
            h.item(name.as_bytes());
            h.item(bytes);
        }
    }
    // The last --set of a key wins, as in composition; secrets cannot be set.
    let sets: BTreeMap<&str, &str> = overrides
        .set
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    h.item(&(sets.len() as u64).to_le_bytes());
    for (k, v) in sets {
        h.item(k.as_bytes());
        h.item(v.as_bytes());
    }
    let out = h.0.finalize();
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for b in out {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

struct Framed(Sha256);

impl Framed {
    fn item(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }
}
