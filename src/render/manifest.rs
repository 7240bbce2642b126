//! `manifest.json`: what was rendered, from what. Deterministic (no clock),
//! and free of secrets: secret parameters appear by name only, and the boot
//! document, which may hold secrets, is described by its size alone.

use super::Document;
use crate::compose::Composition;
use crate::model::ParamType;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const MANIFEST_FORMAT: u32 = 1;

pub fn manifest(comp: &Composition, digest: &str, bake: &Document, boot: &Document) -> Value {
    let mut params = serde_json::Map::new();
    let mut secrets = Vec::new();
    for (name, p) in &comp.params {
        if p.kind == ParamType::Secret {
            secrets.push(json!({"name": name, "provided": !p.value.is_null()}));
        } else {
            params.insert(name.clone(), p.value.clone());
        }
    }
    let checks = |plan: &crate::compose::Plan| -> Vec<Value> {
        plan.checks
            .iter()
            .map(|c| serde_json::to_value(c).expect("check serializes"))
            .collect()
    };
    json!({
        "format": MANIFEST_FORMAT,
        "ingot_version": env!("CARGO_PKG_VERSION"),
        "image": {
            "name": comp.image.name,
            "version": comp.image.version,
            "description": comp.image.description,
            "distro": comp.image.distro.name(),
            "os_distro": comp.image.distro.family(),
            "os_version": comp.image.distro.version(),
            "base": comp.image.base,
            "properties": comp.image.properties,
        },
        "input_digest": digest,
        "layers": comp.layers.iter().map(|l| json!({"name": l.name, "version": l.version})).collect::<Vec<_>>(),
        "params": params,
        "secrets": secrets,
        "ports": comp.ports,
        "user_data": {
            "bake": {
                "file": bake.file_name(),
                "bytes": bake.bytes.len(),
                "gzip": bake.gzipped,
                "sha256": sha256(&bake.bytes),
            },
            "boot": {
                "file": boot.file_name(),
                "bytes": boot.bytes.len(),
                "gzip": boot.gzipped,
            },
        },
        "checks": {"bake": checks(&comp.bake), "boot": checks(&comp.boot)},
    })
}

fn sha256(bytes: &[u8]) -> String {
    let out = Sha256::digest(bytes);
    out.iter().map(|b| format!("{b:02x}")).collect()
}
