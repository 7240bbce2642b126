//! tera, as layers use it: one instance per layer holding the layer's
//! `*.tera` files (so they can include each other), inline strings rendered
//! against it, no autoescaping (nothing here is HTML), and no builtins such
//! as `now()` or `get_random()` (tera's default features are off), which
//! keeps output deterministic.

use super::ComposeError;
use crate::model::LayerSource;
use std::error::Error as _;
use tera::{Context, Tera};

pub struct LayerTemplates {
    layer: String,
    tera: Tera,
}

impl LayerTemplates {
    pub fn new(source: &LayerSource) -> Result<Self, ComposeError> {
        let layer = source.layer.name.clone();
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        let mut files = Vec::new();
        for (name, bytes) in &source.assets {
            if name.ends_with(".tera") {
                let text = std::str::from_utf8(bytes).map_err(|_| ComposeError::Template {
                    layer: layer.clone(),
                    what: format!("template {name}"),
                    message: "not UTF-8 text".into(),
                })?;
                files.push((name.as_str(), text));
            }
        }
        tera.add_raw_templates(files)
            .map_err(|e| ComposeError::Template {
                layer: layer.clone(),
                what: "templates".into(),
                message: chain(&e),
            })?;
        Ok(LayerTemplates { layer, tera })
    }

    pub fn has(&self, name: &str) -> bool {
        self.tera.get_template_names().any(|n| n == name)
    }

    pub fn render_file(&self, name: &str, ctx: &Context) -> Result<String, ComposeError> {
        self.tera
            .render(name, ctx)
            .map_err(|e| ComposeError::Template {
                layer: self.layer.clone(),
                what: format!("template {name}"),
                message: chain(&e),
            })
    }

    /// Renders an inline string; `what` says where it came from for errors
    /// ("files[2].content", "commands.boot[0]").
    pub fn render_inline(
        &mut self,
        what: &str,
        text: &str,
        ctx: &Context,
    ) -> Result<String, ComposeError> {
        // Most strings hold no template syntax: skip tera's parser for them.
        if !text.contains("{{") && !text.contains("{%") && !text.contains("{#") {
            return Ok(text.to_string());
        }
        self.tera
            .render_str(text, ctx)
            .map_err(|e| ComposeError::Template {
                layer: self.layer.clone(),
                what: what.to_string(),
                message: chain(&e),
            })
    }
}

/// tera puts the useful part of a message in the error's sources.
fn chain(e: &tera::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts
        .into_iter()
        .map(|p| p.replace("'__tera_one_off'", "the inline template"))
        .collect::<Vec<_>>()
        .join(": ")
}
