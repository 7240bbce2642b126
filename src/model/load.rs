//! Reading layer and image files from disk. The only I/O of the engine.

use super::{Image, Layer, LoadError, SCHEMA_VERSION};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A layer with everything beside it: templates, keys, sources. The bytes of
/// every file are kept because they all shape the image (input digest).
#[derive(Debug, Clone)]
pub struct LayerSource {
    pub layer: Layer,
    /// `layers/<name>/layer.yaml`, as the user would write it.
    pub file: PathBuf,
    /// Relative path inside the layer folder → content. Includes layer.yaml,
    /// excludes documentation (`*.md`), which shapes nothing.
    pub assets: BTreeMap<String, Vec<u8>>,
}

impl LayerSource {
    pub fn asset(&self, name: &str) -> Option<&[u8]> {
        self.assets.get(name).map(Vec::as_slice)
    }
}

/// An image file and the layers it lists.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub image: Image,
    pub image_file: PathBuf,
    pub image_bytes: Vec<u8>,
    /// In the image's order.
    pub layers: Vec<LayerSource>,
}

pub fn load_image(image_file: &Path, layers_dir: &Path) -> Result<Loaded, LoadError> {
    let image_bytes = read(image_file)?;
    let image: Image = parse(image_file, &image_bytes)?;
    check_schema(image_file, &image_bytes, image.schema)?;
    if image.layers.is_empty() {
        return Err(invalid(
            image_file,
            &image_bytes,
            "layers:",
            "`layers` is empty",
        ));
    }
    let mut layers = Vec::with_capacity(image.layers.len());
    for (i, name) in image.layers.iter().enumerate() {
        if image.layers[..i].contains(name) {
            return Err(invalid(
                image_file,
                &image_bytes,
                "layers:",
                &format!("layer `{name}` is listed twice"),
            ));
        }
        let wanted_by = format!("image `{}` ({})", image.name, image_file.display());
        layers.push(load_layer(layers_dir, name, &wanted_by)?);
    }
    Ok(Loaded {
        image,
        image_file: image_file.to_path_buf(),
        image_bytes,
        layers,
    })
}

pub fn load_layer(
    layers_dir: &Path,
    name: &str,
    wanted_by: &str,
) -> Result<LayerSource, LoadError> {
    if !is_layer_name(name) {
        return Err(LoadError::Invalid {
            path: layers_dir.join(name),
            line: None,
            message: format!(
                "`{name}` (wanted by {wanted_by}) is not a layer name: use lower-case letters, digits, `-` and `_`"
            ),
        });
    }
    let dir = layers_dir.join(name);
    let file = dir.join("layer.yaml");
    if !file.is_file() {
        return Err(LoadError::LayerNotFound {
            name: name.to_string(),
            path: file,
            wanted_by: wanted_by.to_string(),
        });
    }
    let bytes = read(&file)?;
    let layer: Layer = parse(&file, &bytes)?;
    check_schema(&file, &bytes, layer.schema)?;
    if layer.name != name {
        return Err(invalid(
            &file,
            &bytes,
            "name:",
            &format!(
                "the layer is named `{}` but lives in folder `{name}`: they must match",
                layer.name
            ),
        ));
    }
    if layer.distros.is_empty() {
        return Err(invalid(&file, &bytes, "distros:", "`distros` is empty"));
    }
    let mut assets = BTreeMap::new();
    collect_assets(&dir, &dir, &mut assets)?;
    Ok(LayerSource {
        layer,
        file,
        assets,
    })
}

/// Every layer under `layers_dir`, sorted by name.
pub fn list_layers(layers_dir: &Path) -> Result<Vec<LayerSource>, LoadError> {
    let entries = fs::read_dir(layers_dir).map_err(|source| LoadError::Read {
        path: layers_dir.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("layer.yaml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| load_layer(layers_dir, n, "`ingot layers`"))
        .collect()
}

/// Layer names end up in shell commands, paths and Glance properties:
/// keep them plain.
pub fn is_layer_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn collect_assets(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), LoadError> {
    let entries = fs::read_dir(dir).map_err(|source| LoadError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            collect_assets(root, &path, out)?;
        } else if path.extension().is_none_or(|e| e != "md") {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel, read(&path)?);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, LoadError> {
    serde_yaml::from_slice(bytes).map_err(|e| LoadError::yaml(path, e))
}

fn check_schema(path: &Path, bytes: &[u8], schema: u32) -> Result<(), LoadError> {
    if schema == SCHEMA_VERSION {
        return Ok(());
    }
    Err(invalid(
        path,
        bytes,
        "schema:",
        &format!(
            "schema {schema} is not supported: this ingot ({}) reads schema {SCHEMA_VERSION}",
            env!("CARGO_PKG_VERSION")
        ),
    ))
}

/// An error about a top-level key, located at the line that starts with it.
fn invalid(path: &Path, bytes: &[u8], key: &str, message: &str) -> LoadError {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().position(|l| l.starts_with(key)).map(|i| i + 1);
    LoadError::Invalid {
        path: path.to_path_buf(),
        line,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_err(yaml: &str) -> String {
        let path = Path::new("layers/x/layer.yaml");
        parse::<Layer>(path, yaml.as_bytes())
            .unwrap_err()
            .to_string()
    }

    const HEAD: &str = "schema: 1\nname: x\nversion: '1'\ndescription: d\ndistros: [debian-12]\n";

    #[test]
    fn unknown_keys_are_errors_with_line_and_column() {
        let err = layer_err(&format!("{HEAD}packagez: [nginx]\n"));
        assert!(
            err.starts_with("layers/x/layer.yaml:6:1: unknown field `packagez`, expected one of"),
            "{err}"
        );
    }

    #[test]
    fn decimal_modes_are_refused_where_they_are_written() {
        let err = layer_err(&format!(
            "{HEAD}files:\n  - path: /etc/x\n    content: x\n    mode: 644\n"
        ));
        assert_eq!(
            err,
            "layers/x/layer.yaml:7:5: files[0]: file mode 644 is a number: write it as a quoted \
             octal string such as \"0644\" (cloud-init would read 644 as a decimal mode)"
        );
    }

    #[test]
    fn unknown_distros_list_the_supported_ones() {
        let err =
            layer_err("schema: 1\nname: x\nversion: '1'\ndescription: d\ndistros: [centos-7]\n");
        assert_eq!(
            err,
            "layers/x/layer.yaml:5:11: distros[0]: unknown variant `centos-7`, expected `ubuntu-24.04` or `debian-12`"
        );
    }

    #[test]
    fn a_file_needs_exactly_one_body() {
        let err = layer_err(&format!(
            "{HEAD}files:\n  - path: /etc/x\n    content: x\n    template: x.tera\n"
        ));
        assert!(
            err.ends_with(
                ":7:3: files: file /etc/x: give exactly one of `content`, `template` or `source`"
            ),
            "{err}"
        );
    }

    #[test]
    fn ports_must_be_in_range() {
        let err = layer_err(&format!(
            "{HEAD}ports:\n  - port: 70000\n    protocol: tcp\n    exposure: public\n    service: x\n"
        ));
        assert!(
            err.contains("port 70000 is out of range: expected 1 to 65535"),
            "{err}"
        );
    }

    #[test]
    fn cloud_config_values_have_cloud_inits_types() {
        let err = layer_err(&format!(
            "{HEAD}cloud_config:\n  boot:\n    ssh_pwauth: \"no\"\n"
        ));
        assert!(
            err.contains("cloud_config key `ssh_pwauth` must be true or false, got no"),
            "{err}"
        );
        let ok = format!("{HEAD}cloud_config:\n  boot:\n    ssh_pwauth: \"{{{{ pw }}}}\"\n");
        assert!(parse::<Layer>(Path::new("x"), ok.as_bytes()).is_ok());
    }

    #[test]
    fn keys_sign_only_their_source() {
        let err = layer_err(&format!(
            "{HEAD}apt:\n  sources:\n    x:\n      source: deb https://example.org stable main\n      key: abc\n"
        ));
        assert!(err.contains("must say `[signed-by=$KEY_FILE]`"), "{err}");
    }
}
