//! Rendering: a [`Composition`] becomes the two user-data documents and the
//! manifest. Pure and deterministic: the same composition and digest give
//! the same bytes.

mod apt_guard;
mod checks;
mod cloud_config;
mod digest;
mod manifest;
mod seal;
mod size;
pub mod state;

pub use cloud_config::{check_path, RELEASE_PATH};
pub use digest::input_digest;
pub use size::fit;
pub use size::{NOVA_USER_DATA_LIMIT, NOVA_USER_DATA_RAW_LIMIT};

use crate::compose::Composition;
use crate::model::Phase;
use serde_json::json;
use thiserror::Error;

/// The shape of every document; part of the input digest.
pub const USER_DATA_TEMPLATE: &str = include_str!("../../cloud-init/user-data.tera");

#[derive(Debug, Error, PartialEq)]
pub enum RenderError {
    #[error("the {phase} user-data is {raw} bytes, {gzipped} gzipped; Nova accepts at most {limit} bytes ({} base64 characters): split the layers' content or move large files into packages", NOVA_USER_DATA_LIMIT)]
    TooLarge {
        phase: Phase,
        raw: usize,
        gzipped: usize,
        limit: usize,
    },
    #[error("internal error shaping the {phase} document: {message}")]
    Shape { phase: Phase, message: String },
}

/// One user-data document.
#[derive(Debug, Clone)]
pub struct Document {
    pub phase: Phase,
    /// The cloud-config text.
    pub text: String,
    /// What to hand to cloud-init: the text, or its gzip when too large.
    pub bytes: Vec<u8>,
    pub gzipped: bool,
}

impl Document {
    pub fn file_name(&self) -> String {
        format!("{}.user-data", self.phase)
    }
}

#[derive(Debug, Clone)]
pub struct Rendered {
    pub bake: Document,
    pub boot: Document,
    /// Which layer asked for each bake package: a builder names it when
    /// apt cannot find the package.
    pub package_layers: std::collections::BTreeMap<String, String>,
    pub manifest: crate::manifest::Manifest,
}

pub fn render(comp: &Composition, digest: &str) -> Result<Rendered, RenderError> {
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_template("user-data", USER_DATA_TEMPLATE)
        .map_err(|e| RenderError::Shape {
            phase: Phase::Bake,
            message: e.to_string(),
        })?;
    let layers: Vec<_> = comp
        .layers
        .iter()
        .map(|l| json!({"name": l.name, "version": l.version}))
        .collect();
    let mut docs = Vec::with_capacity(2);
    for phase in Phase::ALL {
        let map = cloud_config::document(comp, phase, digest);
        let body = serde_yaml::to_string(&map).map_err(|e| RenderError::Shape {
            phase,
            message: e.to_string(),
        })?;
        let ctx = tera::Context::from_value(json!({
            "image": {"name": comp.image.name, "version": comp.image.version, "distro": comp.image.distro.name()},
            "phase": phase.name(),
            "layers": layers,
            "input_digest": digest,
            "body": body.trim_end(),
        }))
        .expect("object context");
        let text = tera
            .render("user-data", &ctx)
            .map_err(|e| RenderError::Shape {
                phase,
                message: e.to_string(),
            })?;
        let (bytes, gzipped) = size::fit(phase, text.as_bytes())?;
        docs.push(Document {
            phase,
            text,
            bytes,
            gzipped,
        });
    }
    let boot = docs.pop().expect("two documents");
    let bake = docs.pop().expect("two documents");
    let manifest = manifest::manifest(comp, digest, &bake, &boot);
    Ok(Rendered {
        bake,
        boot,
        package_layers: comp.bake.package_layer.clone(),
        manifest,
    })
}
