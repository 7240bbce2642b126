//! The render part of `manifest.json` (see [`crate::manifest`]): what was
//! rendered, from what. Deterministic (no clock), and free of secrets.

use super::Document;
use crate::compose::Composition;
use crate::manifest::{
    self, Checks, LayerRef, Manifest, PortRecord, SecretRef, StateRecord, UserData,
};
use crate::model::ParamType;
use sha2::{Digest, Sha256};

pub fn manifest(comp: &Composition, digest: &str, bake: &Document, boot: &Document) -> Manifest {
    let mut params = std::collections::BTreeMap::new();
    let mut secrets = Vec::new();
    for (name, p) in &comp.params {
        if p.kind == ParamType::Secret {
            secrets.push(SecretRef {
                name: name.clone(),
                provided: !p.value.is_null(),
            });
        } else {
            params.insert(name.clone(), p.value.clone());
        }
    }
    let checks = |plan: &crate::compose::Plan| {
        plan.checks
            .iter()
            .map(|c| serde_json::to_value(c).expect("check serializes"))
            .collect()
    };
    Manifest {
        format: manifest::FORMAT,
        ingot_version: env!("CARGO_PKG_VERSION").to_string(),
        image: manifest::ImageRecord {
            name: comp.image.name.clone(),
            version: comp.image.version.clone(),
            description: comp.image.description.clone(),
            distro: comp.image.distro,
            os_distro: comp.image.distro.family().to_string(),
            os_version: comp.image.distro.version().to_string(),
            base: comp.image.base.clone(),
            properties: comp.image.properties.clone(),
        },
        input_digest: digest.to_string(),
        layers: comp
            .layers
            .iter()
            .map(|l| LayerRef {
                name: l.name.clone(),
                version: l.version.clone(),
            })
            .collect(),
        params,
        sets: Default::default(),
        secrets,
        ports: comp
            .ports
            .iter()
            .map(|p| PortRecord {
                port: p.port,
                protocol: p.protocol,
                exposure: p.exposure,
                service: p.service.clone(),
                layer: p.layer.clone(),
            })
            .collect(),
        state: comp
            .state
            .iter()
            .map(|s| StateRecord {
                path: s.spec.path.clone(),
                owner: s.spec.owner.clone(),
                group: s.spec.group.clone(),
                mode: s.spec.mode.octal(),
                layer: s.layer.clone(),
            })
            .collect(),
        user_data: UserData {
            bake: manifest::Document {
                file: bake.file_name(),
                bytes: bake.bytes.len(),
                gzip: bake.gzipped,
                sha256: Some(sha256(&bake.bytes)),
            },
            boot: manifest::Document {
                file: boot.file_name(),
                bytes: boot.bytes.len(),
                gzip: boot.gzipped,
                sha256: None,
            },
        },
        checks: Checks {
            bake: checks(&comp.bake),
            boot: checks(&comp.boot),
        },
        build: None,
    }
}

fn sha256(bytes: &[u8]) -> String {
    let out = Sha256::digest(bytes);
    out.iter().map(|b| format!("{b:02x}")).collect()
}
