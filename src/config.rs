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
        Self::new(&args.image, &args.set, args.secrets.as_deref(), layers)
    }

    /// One image file with `--set` values and an optional secrets file.
    pub fn new(
        image: &Path,
        given: &[String],
        secrets_file: Option<&Path>,
        layers: Option<&Path>,
    ) -> Result<Self, Error> {
        let mut set = Vec::with_capacity(given.len());
        for s in given {
            match s.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    set.push((k.trim().to_string(), v.to_string()))
                }
                _ => return Err(Error::BadSet { given: s.clone() }),
            }
        }
        let mut secrets = secrets_from_env(std::env::vars_os())?;
        let mut secret_sources: BTreeMap<String, String> = secrets
            .keys()
            .map(|k| (k.clone(), crate::compose::env_name(k)))
            .collect();
        if let Some(path) = secrets_file {
            for (k, v) in secrets_from_file(path)? {
                secret_sources.insert(k.clone(), format!("secrets file {}", path.display()));
                secrets.insert(k, v);
            }
        }
        Ok(ImageInput {
            layers_dir: layers
                .map(Path::to_path_buf)
                .unwrap_or_else(|| default_layers_dir(image)),
            image: image.to_path_buf(),
            overrides: Overrides {
                set,
                secrets,
                secret_sources,
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

/// `INGOT_SECRET_<NAME>` variables. Read with `vars_os`: `std::env::vars`
/// panics on a value that is not UTF-8, printing it. Such a secret is
/// refused by its variable's name; other variables are not ingot's concern.
fn secrets_from_env(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<BTreeMap<String, String>, Error> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = BTreeMap::new();
    for (k, v) in vars {
        let Some(name) = k.as_bytes().strip_prefix(SECRET_ENV_PREFIX.as_bytes()) else {
            continue;
        };
        let variable = String::from_utf8_lossy(k.as_bytes()).into_owned();
        let (Ok(name), Some(value)) = (std::str::from_utf8(name), v.to_str()) else {
            return Err(Error::SecretEnv {
                variable,
                problem: "is not valid UTF-8",
            });
        };
        out.insert(name.to_ascii_lowercase(), value.to_string());
    }
    Ok(out)
}

/// Values are never echoed in errors: a broken secrets file is reported by
/// position only. The file may be a pipe (`--secrets <(pass show ...)`),
/// never a device, and is read up to 1 MiB.
fn secrets_from_file(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    use std::io::Read;
    const LIMIT: u64 = 1024 * 1024;
    let bad = |message: String| Error::Secrets {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if !(t.is_file() || t.is_fifo()) {
            return Err(bad("cannot read: not a regular file or a pipe".into()));
        }
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(LIMIT + 1).read_to_end(&mut bytes))
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > LIMIT {
        return Err(bad("larger than 1 MiB: not a secrets file".into()));
    }
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    if let Err(crate::model::yaml::ScanError::Duplicate(d)) =
        crate::model::yaml::scan(text.as_bytes())
    {
        return Err(bad(format!(
            "secret `{}` is given twice (lines {} and {})",
            d.key, d.first.line, d.second.line
        )));
    }
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
        let s = secrets_from_env(vars.into_iter().map(|(k, v)| (k.into(), v.into()))).unwrap();
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
