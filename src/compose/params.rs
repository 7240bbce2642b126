//! Parameter values: layer defaults < image values < `--set`, secrets from
//! the caller's secret store only. Every problem is collected and reported
//! at once, so a user fixes their inputs in one round.

use super::ComposeError;
use crate::model::{Layer, ParamSpec, ParamType};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Default,
    Image,
    Set,
    Secret,
    /// Optional and not given: the value is null.
    Unset,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Null when unset. Never serialized for secrets (see `manifest`).
    pub value: Json,
    pub origin: Origin,
    /// The first layer (in execution order) that declares it.
    pub layer: String,
    pub description: String,
}

/// What the user supplied besides the files. Its `Debug` shows secret
/// names, never their values.
#[derive(Clone, Default)]
pub struct Overrides {
    /// `--set key=value`, in command-line order (the last one wins).
    pub set: Vec<(String, String)>,
    /// Secret values by parameter name (environment or secrets file).
    pub secrets: BTreeMap<String, String>,
    /// Where each secret came from (`INGOT_SECRET_X`, the secrets file),
    /// for warnings; a name missing here came from its variable.
    pub secret_sources: BTreeMap<String, String>,
    /// Building an image needs no secret (the bake never sees one): a
    /// required secret without a value is then not an error.
    pub defer_required_secrets: bool,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("set", &self.set)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("defer_required_secrets", &self.defer_required_secrets)
            .finish()
    }
}

/// Secrets given that no layer reads: a misspelt name (the secret then
/// silently missing) or a parameter that is no secret. Named, never shown.
pub fn unused_secrets(image_name: &str, layers: &[&Layer], overrides: &Overrides) -> Vec<String> {
    let Ok(specs) = declared(layers) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for name in overrides.secrets.keys() {
        let source = overrides
            .secret_sources
            .get(name)
            .cloned()
            .unwrap_or_else(|| env_name(name));
        match specs.get(name.as_str()) {
            Some((spec, _)) if spec.kind == ParamType::Secret => {}
            Some((spec, layer)) => warnings.push(format!(
                "secret `{name}` ({source}) is ignored: `{name}` is a {} parameter of layer `{layer}`, not a secret; set it with --set {name}=...",
                spec.kind
            )),
            None => {
                let secrets: Specs = specs
                    .iter()
                    .filter(|(_, (s, _))| s.kind == ParamType::Secret)
                    .map(|(k, v)| (*k, *v))
                    .collect();
                let hint = unknown(name, "", &secrets);
                let hint = hint
                    .find(" (did you mean")
                    .map(|i| hint[i..].to_string())
                    .unwrap_or_default();
                warnings.push(format!(
                    "secret `{name}` ({source}) is ignored: no layer of image `{image_name}` declares a secret parameter of that name{hint}"
                ));
            }
        }
    }
    warnings
}

pub fn resolve(
    image_name: &str,
    image_params: &BTreeMap<String, serde_yaml::Value>,
    layers: &[&Layer],
    overrides: &Overrides,
) -> Result<BTreeMap<String, Resolved>, ComposeError> {
    let specs = declared(layers)?;
    let mut problems = Vec::new();
    let mut values: BTreeMap<&str, (Json, Origin)> = BTreeMap::new();

    for (name, (spec, _)) in &specs {
        if let Some(d) = &spec.default {
            values.insert(name, (d.clone(), Origin::Default));
        }
    }
    for (name, raw) in image_params {
        match specs.get(name.as_str()) {
            None => problems.push(unknown(name, &format!("image `{image_name}`"), &specs)),
            Some((spec, _)) if spec.kind == ParamType::Secret => problems.push(format!(
                "`{name}` is a secret: image `{image_name}` must not hold its value; give it in the environment as {} or in a --secrets file",
                env_name(name)
            )),
            Some((spec, _)) => match spec.kind.check_yaml(raw) {
                Ok(v) => {
                    values.insert(name, (v, Origin::Image));
                }
                Err(e) => problems.push(format!("`{name}` in image `{image_name}`: {e}")),
            },
        }
    }
    for (name, raw) in &overrides.set {
        match specs.get(name.as_str()) {
            None => problems.push(unknown(name, "--set", &specs)),
            Some((spec, _)) if spec.kind == ParamType::Secret => problems.push(format!(
                "`{name}` is a secret: --set would show it in the process list and shell history; give it in the environment as {} or in a --secrets file",
                env_name(name)
            )),
            Some((spec, _)) => match spec.kind.check_str(raw) {
                Ok(v) => {
                    values.insert(name, (v, Origin::Set));
                }
                Err(e) => problems.push(format!("`{name}` in --set: {e}")),
            },
        }
    }
    for (name, secret) in &overrides.secrets {
        if let Some((spec, _)) = specs.get(name.as_str()) {
            if spec.kind == ParamType::Secret {
                values.insert(name, (Json::String(secret.clone()), Origin::Secret));
            }
        }
    }

    let mut resolved = BTreeMap::new();
    for (name, (spec, layer)) in &specs {
        let (value, origin) = match values.remove(name) {
            Some(v) => v,
            None if spec.required
                && !(spec.kind == ParamType::Secret && overrides.defer_required_secrets) =>
            {
                let how = if spec.kind == ParamType::Secret {
                    format!("set {} or add it to a --secrets file", env_name(name))
                } else {
                    format!("set it in image `{image_name}` or with --set {name}=...")
                };
                let about = if spec.description.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", spec.description)
                };
                problems.push(format!(
                    "`{name}` ({}, layer `{layer}`){about} is required and has no value: {how}",
                    spec.kind
                ));
                continue;
            }
            None => (Json::Null, Origin::Unset),
        };
        resolved.insert(
            name.to_string(),
            Resolved {
                kind: spec.kind,
                value,
                origin,
                layer: layer.to_string(),
                description: spec.description.clone(),
            },
        );
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(ComposeError::Params { problems })
    }
}

/// The environment variable a secret parameter is read from.
pub fn env_name(param: &str) -> String {
    format!("INGOT_SECRET_{}", param.to_ascii_uppercase())
}

type Specs<'a> = BTreeMap<&'a str, (&'a ParamSpec, &'a str)>;

/// Every declared parameter with the first layer declaring it; a parameter
/// declared twice must be declared identically.
fn declared<'a>(layers: &[&'a Layer]) -> Result<Specs<'a>, ComposeError> {
    let mut specs: Specs<'a> = BTreeMap::new();
    for layer in layers {
        for (name, spec) in &layer.params {
            match specs.get(name.as_str()) {
                None => {
                    specs.insert(name, (spec, &layer.name));
                }
                Some((first, first_layer))
                    if first.kind != spec.kind || first.default != spec.default =>
                {
                    return Err(ComposeError::ParamMismatch {
                        name: name.clone(),
                        first: first_layer.to_string(),
                        first_decl: describe(first),
                        second: layer.name.clone(),
                        second_decl: describe(spec),
                    })
                }
                Some(_) => {}
            }
        }
    }
    Ok(specs)
}

fn describe(spec: &ParamSpec) -> String {
    match &spec.default {
        Some(d) => format!("{} with default {d}", spec.kind),
        None => format!("{} without default", spec.kind),
    }
}

fn unknown(name: &str, place: &str, specs: &Specs) -> String {
    let hint = specs
        .keys()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    format!("`{name}` in {place} is not a parameter of any layer of the image{hint}")
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, params: &str) -> Layer {
        serde_yaml::from_str(&format!(
            "schema: 1\nname: {name}\nversion: '1'\ndescription: d\ndistros: [debian-12]\nparams:\n{params}"
        ))
        .unwrap()
    }

    fn image(yaml: &str) -> BTreeMap<String, serde_yaml::Value> {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn set_beats_image_beats_default() {
        let l = layer("m", "  port: {type: port, default: 9090}\n  tz: {type: string, default: UTC}\n  n: {type: int, default: 1}\n");
        let o = Overrides {
            set: vec![("port".into(), "9091".into())],
            ..Default::default()
        };
        let r = resolve("img", &image("port: 9000\ntz: Europe/Zurich\n"), &[&l], &o).unwrap();
        assert_eq!(r["port"].value, serde_json::json!(9091));
        assert_eq!(r["port"].origin, Origin::Set);
        assert_eq!(r["tz"].value, serde_json::json!("Europe/Zurich"));
        assert_eq!(r["n"].origin, Origin::Default);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let l = layer(
            "web",
            "  domain: {type: fqdn, description: public name}\n  email: {type: email}\n  port: {type: port, default: 80}\n  token: {type: secret, required: true}\n",
        );
        let o = Overrides {
            set: vec![("prot".into(), "1".into())],
            ..Default::default()
        };
        let err = resolve("img", &image("port: 99999\n"), &[&l], &o).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid parameters:\n\
             \x20 - `port` in image `img`: expected a port number from 1 to 65535\n\
             \x20 - `prot` in --set is not a parameter of any layer of the image (did you mean `port`?)\n\
             \x20 - `domain` (fqdn, layer `web`) (public name) is required and has no value: set it in image `img` or with --set domain=...\n\
             \x20 - `email` (email, layer `web`) is required and has no value: set it in image `img` or with --set email=...\n\
             \x20 - `token` (secret, layer `web`) is required and has no value: set INGOT_SECRET_TOKEN or add it to a --secrets file"
        );
    }

    #[test]
    fn secrets_never_come_from_files_or_the_command_line() {
        let l = layer("g", "  password: {type: secret}\n");
        let o = Overrides {
            set: vec![("password".into(), "x".into())],
            ..Default::default()
        };
        let err = resolve("img", &image("password: hunter2\n"), &[&l], &o).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`password` is a secret: image `img` must not hold its value; give it in the environment as INGOT_SECRET_PASSWORD"), "{text}");
        assert!(
            text.contains("`password` is a secret: --set would show it in the process list"),
            "{text}"
        );
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn optional_secrets_are_null_until_given() {
        let l = layer("g", "  password: {type: secret}\n");
        let r = resolve("img", &BTreeMap::new(), &[&l], &Overrides::default()).unwrap();
        assert_eq!(r["password"].value, Json::Null);
        let o = Overrides {
            secrets: [("password".to_string(), "s3cret".to_string())].into(),
            ..Default::default()
        };
        let r = resolve("img", &BTreeMap::new(), &[&l], &o).unwrap();
        assert_eq!(r["password"].origin, Origin::Secret);
    }

    #[test]
    fn shared_parameters_must_agree() {
        let a = layer("monitoring", "  port: {type: port, default: 9090}\n");
        let b = layer("jitsi", "  port: {type: int, default: 9090}\n");
        let err = resolve("img", &BTreeMap::new(), &[&a, &b], &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter `port` is declared by layer `monitoring` as port with default 9090 and by layer `jitsi` as int with default 9090: a shared parameter needs one type and one default"
        );
    }
}
