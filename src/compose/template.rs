//! tera, as layers use it: one instance per layer holding the layer's
//! `*.tera` files (so they can include each other), inline strings rendered
//! against it, no autoescaping (nothing here is HTML), and no builtins such
//! as `now()` or `get_random()` (tera's default features are off), which
//! keeps output deterministic.
//!
//! Two additions to tera's defaults: the `shell_quote` filter (the one
//! quoting rule, [`crate::shell`]) and a bounded `range` (tera's own panics
//! on `step_by=0` and loops for as long as `end` says).
//!
//! Conditions are strict: tera takes an undefined variable in `{% if %}`
//! as false, so a misspelt `when: grafna` would silently drop its item.
//! Every condition (a `when`, an `{% if %}` or `{% elif %}` of a template
//! or inline string) is read first and each variable it uses must be in
//! the context (or bound by the template: loop variables, `set`, macro
//! arguments); `x is defined` and `x | default(...)` may name anything.

use super::ComposeError;
use crate::model::LayerSource;
use std::collections::{BTreeSet, HashMap};
use std::error::Error as _;
use tera::ast::{Expr, ExprVal, Node};
use tera::{Context, Tera};

/// The most items `range` makes: plenty for a template, and a bound on
/// what a `--set` value can make a loop do.
pub const RANGE_LIMIT: usize = 10_000;

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
        tera.register_filter(crate::shell::FILTER, crate::shell::tera_filter);
        tera.register_function("range", bounded_range);
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
        tera.add_raw_templates(files).map_err(|e| {
            let message = chain(&e);
            ComposeError::Template {
                layer: layer.clone(),
                what: parse_error_place(&message).unwrap_or_else(|| "templates".into()),
                message,
            }
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
        if let Ok(template) = self.tera.get_template(name) {
            if let Some(var) = undefined_in_conditions(&template.ast, ctx) {
                let line = self
                    .sources
                    .get(name)
                    .and_then(|src| line_of_name(src, &var));
                return Err(ComposeError::UndefinedVariable {
                    layer: self.layer.clone(),
                    what: match line {
                        Some(l) => format!("template {name}, line {l}"),
                        None => format!("template {name}"),
                    },
                    name: var,
                });
            }
        }
        self.tera.render(name, ctx).map_err(|e| {
            let message = chain(&e);
            let line = self.sources.get(name).and_then(|src| {
                line_of_variable(src, &message).or_else(|| line_of_quoted(src, name, &message))
            });
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
        if text.contains("{%") {
            // A template that does not parse is left to tera's own message.
            if let Ok(t) = tera::Template::new("inline", None, text) {
                if let Some(name) = undefined_in_conditions(&t.ast, ctx) {
                    return Err(ComposeError::UndefinedVariable {
                        layer: self.layer.clone(),
                        what: what.to_string(),
                        name,
                    });
                }
            }
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
    line_of_name(source, name)
}

/// `Failed to parse 'x.tera': --> 3:14` as `template x.tera, line 3`.
fn parse_error_place(message: &str) -> Option<String> {
    let start = message.find("Failed to parse '")? + "Failed to parse '".len();
    let name = &message[start..start + message[start..].find('\'')?];
    let at = message.find("--> ")? + 4;
    let line: usize = message[at..].split(':').next()?.trim().parse().ok()?;
    Some(format!("template {name}, line {line}"))
}

/// Other render errors quote what failed (`Filter 'x' not found`): the
/// first line naming it.
fn line_of_quoted(source: &str, template: &str, message: &str) -> Option<usize> {
    message
        .split('\'')
        .skip(1)
        .step_by(2)
        .filter(|q| !q.is_empty() && *q != template)
        .find_map(|q| source.lines().position(|l| l.contains(q)).map(|i| i + 1))
}

fn line_of_name(source: &str, name: &str) -> Option<usize> {
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

/// `range(end=N, start=0, step_by=1)` as tera's, refusing a zero step and
/// more than [`RANGE_LIMIT`] items.
fn bounded_range(args: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let arg = |name: &str, default: Option<u64>| -> tera::Result<u64> {
        match args.get(name) {
            Some(v) => v.as_u64().ok_or_else(|| {
                tera::Error::msg(format!(
                    "Function `range` received {name}={v} but `{name}` can only be a whole number"
                ))
            }),
            None => default.ok_or_else(|| {
                tera::Error::msg(format!(
                    "Function `range` was called without a `{name}` argument"
                ))
            }),
        }
    };
    let start = arg("start", Some(0))?;
    let end = arg("end", None)?;
    let step = arg("step_by", Some(1))?;
    if step == 0 {
        return Err(tera::Error::msg(
            "Function `range` needs a `step_by` above 0",
        ));
    }
    if start > end {
        return Err(tera::Error::msg(
            "Function `range` was called with a `start` argument greater than the `end` one",
        ));
    }
    let count = (end - start).div_ceil(step);
    if count > RANGE_LIMIT as u64 {
        return Err(tera::Error::msg(format!(
            "Function `range` would make {count} items; at most {RANGE_LIMIT} are allowed"
        )));
    }
    let items: Vec<tera::Value> = (start..end)
        .step_by(step as usize)
        .map(tera::Value::from)
        .collect();
    Ok(tera::Value::Array(items))
}

/// The first variable that a condition of `ast` uses and that is neither in
/// `ctx` nor bound by the template itself.
pub fn undefined_in_conditions(ast: &[Node], ctx: &Context) -> Option<String> {
    let mut bound = BTreeSet::new();
    bound_names(ast, &mut bound);
    let mut used = Vec::new();
    conditions(ast, &mut used);
    used.into_iter()
        .find(|n| !bound.contains(n) && !ctx.contains_key(n))
}

/// Names a template binds itself, anywhere in it (an over-approximation of
/// scopes: it can only make the check more lenient).
fn bound_names(nodes: &[Node], out: &mut BTreeSet<String>) {
    for node in nodes {
        match node {
            Node::Set(_, set) => {
                out.insert(set.key.clone());
            }
            Node::Forloop(_, f, _) => {
                out.insert(f.value.clone());
                if let Some(k) = &f.key {
                    out.insert(k.clone());
                }
                out.insert("loop".into());
                bound_names(&f.body, out);
                if let Some(b) = &f.empty_body {
                    bound_names(b, out);
                }
            }
            Node::MacroDefinition(_, m, _) => {
                out.extend(m.args.keys().cloned());
                bound_names(&m.body, out);
            }
            Node::If(i, _) => {
                for (_, _, body) in &i.conditions {
                    bound_names(body, out);
                }
                if let Some((_, body)) = &i.otherwise {
                    bound_names(body, out);
                }
            }
            Node::Block(_, b, _) => bound_names(&b.body, out),
            Node::FilterSection(_, f, _) => bound_names(&f.body, out),
            _ => {}
        }
    }
}

/// The variables used by every `if`/`elif` condition, in order.
fn conditions(nodes: &[Node], out: &mut Vec<String>) {
    for node in nodes {
        match node {
            Node::If(i, _) => {
                for (_, cond, body) in &i.conditions {
                    variables(cond, out);
                    conditions(body, out);
                }
                if let Some((_, body)) = &i.otherwise {
                    conditions(body, out);
                }
            }
            Node::Forloop(_, f, _) => {
                conditions(&f.body, out);
                if let Some(b) = &f.empty_body {
                    conditions(b, out);
                }
            }
            Node::MacroDefinition(_, m, _) => conditions(&m.body, out),
            Node::Block(_, b, _) => conditions(&b.body, out),
            Node::FilterSection(_, f, _) => conditions(&f.body, out),
            _ => {}
        }
    }
}

/// The root of every variable an expression reads (`image.name` → `image`).
fn variables(expr: &Expr, out: &mut Vec<String>) {
    for f in &expr.filters {
        f.args.values().for_each(|a| variables(a, out));
    }
    match &expr.val {
        ExprVal::Ident(name) if !expr.has_default_filter() => out.push(root(name)),
        ExprVal::Math(m) => {
            variables(&m.lhs, out);
            variables(&m.rhs, out);
        }
        ExprVal::Logic(l) => {
            variables(&l.lhs, out);
            variables(&l.rhs, out);
        }
        ExprVal::Test(t) => {
            if t.name != "defined" && t.name != "undefined" {
                out.push(root(&t.ident));
            }
            t.args.iter().for_each(|a| variables(a, out));
        }
        ExprVal::FunctionCall(f) => f.args.values().for_each(|a| variables(a, out)),
        ExprVal::MacroCall(m) => m.args.values().for_each(|a| variables(a, out)),
        ExprVal::Array(items) => items.iter().for_each(|a| variables(a, out)),
        ExprVal::StringConcat(c) => {
            for v in &c.values {
                if let ExprVal::Ident(name) = v {
                    out.push(root(name));
                }
            }
        }
        ExprVal::In(i) => {
            variables(&i.lhs, out);
            variables(&i.rhs, out);
        }
        _ => {}
    }
}

fn root(name: &str) -> String {
    name.split(['.', '[']).next().unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undefined(text: &str) -> Option<String> {
        let ctx = Context::from_value(
            serde_json::json!({"grafana": true, "layers": ["a"], "image": {"name": "x"}}),
        )
        .unwrap();
        let t = tera::Template::new("t", None, text).unwrap();
        undefined_in_conditions(&t.ast, &ctx)
    }

    #[test]
    fn conditions_name_undefined_variables() {
        assert_eq!(
            undefined("{% if grafna %}x{% endif %}").as_deref(),
            Some("grafna")
        );
        assert_eq!(
            undefined("{% if grafana %}{% elif not alertmanger %}{% endif %}").as_deref(),
            Some("alertmanger")
        );
        assert_eq!(
            undefined("{% if grafana and image.name == \"x\" %}{% endif %}"),
            None
        );
        assert_eq!(undefined("{% if \"a\" in layers %}{% endif %}"), None);
        assert_eq!(undefined("{% if typo is defined %}{% endif %}"), None);
        assert_eq!(
            undefined("{% if typo | default(value=1) %}{% endif %}"),
            None
        );
        assert_eq!(
            undefined(
                "{% for p in layers %}{% if p == \"a\" and loop.first %}{% endif %}{% endfor %}"
            ),
            None
        );
        assert_eq!(
            undefined("{% if x == 1 or y %}{% endif %}").as_deref(),
            Some("x")
        );
    }

    #[test]
    fn range_is_bounded() {
        let args = |pairs: &[(&str, u64)]| -> HashMap<String, tera::Value> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), tera::Value::from(*v)))
                .collect()
        };
        assert_eq!(
            bounded_range(&args(&[("end", 5), ("step_by", 2)])).unwrap(),
            serde_json::json!([0, 2, 4])
        );
        assert!(bounded_range(&args(&[("end", 5), ("step_by", 0)])).is_err());
        assert!(bounded_range(&args(&[("end", 1_000_000_000)])).is_err());
        assert!(bounded_range(&args(&[("end", RANGE_LIMIT as u64)])).is_ok());
    }
}
