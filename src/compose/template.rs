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
    /// Template sources, to point an error at its line.
    sources: std::collections::BTreeMap<String, String>,
}

impl LayerTemplates {
    pub fn new(source: &LayerSource) -> Result<Self, ComposeError> {
        let layer = source.layer.name.clone();
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        let mut files = Vec::new();
        let mut sources = std::collections::BTreeMap::new();
        for (name, bytes) in &source.assets {
            if name.ends_with(".tera") {
                let text = std::str::from_utf8(bytes).map_err(|_| ComposeError::Template {
                    layer: layer.clone(),
                    what: format!("template {name}"),
                    message: "not UTF-8 text".into(),
                })?;
                files.push((name.as_str(), text));
                sources.insert(name.clone(), text.to_string());
            }
        }
        tera.add_raw_templates(files)
            .map_err(|e| ComposeError::Template {
                layer: layer.clone(),
                what: "templates".into(),
                message: chain(&e),
            })?;
        Ok(LayerTemplates {
            layer,
            tera,
            sources,
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.tera.get_template_names().any(|n| n == name)
    }

    pub fn render_file(&self, name: &str, ctx: &Context) -> Result<String, ComposeError> {
        self.tera.render(name, ctx).map_err(|e| {
            let message = chain(&e);
            let line = self
                .sources
                .get(name)
                .and_then(|src| line_of_variable(src, &message));
            ComposeError::Template {
                layer: self.layer.clone(),
                what: match line {
                    Some(l) => format!("template {name}, line {l}"),
                    None => format!("template {name}"),
                },
                message,
            }
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

/// tera's render errors name a missing variable but not where it is used:
/// the first line using it inside a tag is where to look.
fn line_of_variable(source: &str, message: &str) -> Option<usize> {
    let start = message.find("Variable `")? + "Variable `".len();
    let name = &message[start..start + message[start..].find('`')?];
    source
        .lines()
        .position(|line| {
            let tags = line.contains("{{") || line.contains("{%");
            tags && line.match_indices(name).any(|(i, _)| {
                let before = line[..i].chars().last();
                let after = line[i + name.len()..].chars().next();
                let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                !ident(before) && !ident(after)
            })
        })
        .map(|i| i + 1)
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
