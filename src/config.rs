//! Arguments become typed inputs once: the image file, the layers folder,
//! and the overrides (`--set`, secrets from the environment and a file).

use crate::cli::ImageArgs;
use crate::compose::Overrides;
use crate::error::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SECRET_ENV_PREFIX: &str = "INGOT_SECRET_";

#[derive(Debug)]
pub struct ImageInput {
    pub image: PathBuf,
    pub layers_dir: PathBuf,
    pub overrides: Overrides,
}

impl ImageInput {
    pub fn from_args(args: &ImageArgs, layers: Option<&Path>) -> Result<Self, Error> {
        let mut set = Vec::with_capacity(args.set.len());
        for s in &args.set {
            match s.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    set.push((k.trim().to_string(), v.to_string()))
                }
                _ => return Err(Error::BadSet { given: s.clone() }),
            }
        }
        let mut secrets = secrets_from_env(std::env::vars());
        if let Some(path) = &args.secrets {
            secrets.extend(secrets_from_file(path)?);
        }
        Ok(ImageInput {
            layers_dir: layers
                .map(Path::to_path_buf)
                .unwrap_or_else(|| default_layers_dir(&args.image)),
            image: args.image.clone(),
            overrides: Overrides {
                set,
                secrets,
                defer_required_secrets: false,
            },
        })
    }
}

/// `layers/` beside the image's folder (images/x.yaml → layers/), which is
/// the repository layout; else `./layers`.
pub fn default_layers_dir(image: &Path) -> PathBuf {
    let beside = image
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("layers"));
    match beside {
        Some(dir) if dir.is_dir() => dir,
        _ => PathBuf::from("layers"),
    }
}

fn secrets_from_env(vars: impl Iterator<Item = (String, String)>) -> BTreeMap<String, String> {
    vars.filter_map(|(k, v)| {
        k.strip_prefix(SECRET_ENV_PREFIX)
            .map(|name| (name.to_ascii_lowercase(), v))
    })
    .collect()
}

/// Values are never echoed in errors: a broken secrets file is reported by
/// position only.
fn secrets_from_file(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Secrets {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    let value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| Error::Secrets {
        path: path.to_path_buf(),
        message: match e.location() {
            Some(l) => format!("not valid YAML (line {}, column {})", l.line(), l.column()),
            None => "not valid YAML".into(),
        },
    })?;
    let map = match value {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Ok(BTreeMap::new()),
        _ => {
            return Err(Error::Secrets {
                path: path.to_path_buf(),
                message: "expected a mapping of `name: value`".into(),
            })
        }
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let key = k.as_str().map(str::to_string);
        let val = match &v {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match (key, val) {
            (Some(k), Some(v)) => {
                out.insert(k, v);
            }
            (key, _) => {
                return Err(Error::Secrets {
                    path: path.to_path_buf(),
                    message: format!(
                        "secret `{}` must be a string",
                        key.unwrap_or_else(|| "?".into())
                    ),
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_prefixed_variables() {
        let vars = vec![
            (
                "INGOT_SECRET_GRAFANA_ADMIN_PASSWORD".to_string(),
                "x".to_string(),
            ),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let s = secrets_from_env(vars.into_iter());
        assert_eq!(s.len(), 1);
        assert_eq!(s["grafana_admin_password"], "x");
    }

    #[test]
    fn broken_secret_files_do_not_echo_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(&path, "password: [hunter2\n").unwrap();
        let err = secrets_from_file(&path).unwrap_err().to_string();
        assert!(err.contains("not valid YAML (line"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
