//! Reading layer and image files from disk. The only I/O of the engine.
//!
//! Inputs are read defensively, because a layer folder may hold anything:
//! - only regular files are read; a FIFO, socket or device is refused by
//!   name (opening a FIFO would wait for a writer forever);
//! - symbolic links are followed when they lead to a regular file (a
//!   template shared by two layers), refused when they lead to a folder
//!   (a link to `..` would make the walk endless) or to anything else;
//! - every read stops at [`MAX_INPUT_BYTES`], folders at
//!   [`MAX_DEPTH`] levels and [`MAX_LAYER_FILES`] files;
//! - each YAML file is read twice: by serde (types, unknown keys) and as
//!   events ([`super::yaml`]): a key repeated in any mapping is an error at
//!   its line, and the line of every key is kept for later messages.

use super::yaml::{self, Positions, ScanError};
use super::{Image, Layer, LoadError, SCHEMA_VERSION};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
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
    /// Where each key and item of layer.yaml is.
    pub positions: Positions,
}

/// No input ingot reads is larger: a user-data document holds at most
/// 49,149 bytes (gzipped), so a bigger file is a mistake or an endless one.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;
/// Folders nested deeper inside a layer folder are refused.
pub const MAX_DEPTH: usize = 16;
/// Files in one layer folder.
pub const MAX_LAYER_FILES: usize = 10_000;

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
    /// Where each key and item of the image file is.
    pub image_positions: Positions,
    /// In the image's order.
    pub layers: Vec<LayerSource>,
}

pub fn load_image(image_file: &Path, layers_dir: &Path) -> Result<Loaded, LoadError> {
    let image_bytes = read(image_file)?;
    let (image, image_positions): (Image, _) = parse(image_file, &image_bytes)?;
    check_schema(image_file, &image_bytes, image.schema)?;
    {
        use super::names::{ImageName, Rule, Version};
        for (key, value, rule) in [
            (
                "name",
                &image.name,
                ImageName::check as fn(&str) -> Result<(), String>,
            ),
            ("version", &image.version, Version::check),
        ] {
            if let Err(message) = rule(value) {
                let pos = image_positions.get(key);
                return Err(LoadError::Yaml {
                    path: image_file.to_path_buf(),
                    line: pos.map_or(1, |p| p.line),
                    column: pos.map_or(1, |p| p.column),
                    message: format!("{key}: {message}"),
                });
            }
        }
    }
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
        image_positions,
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
    if fs::metadata(&file).is_err() {
        return Err(LoadError::LayerNotFound {
            name: name.to_string(),
            path: file,
            wanted_by: wanted_by.to_string(),
        });
    }
    let bytes = read(&file)?;
    let (layer, positions): (Layer, _) = parse(&file, &bytes)?;
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
    check_state(&file, &layer, &positions)?;
    let mut assets = BTreeMap::new();
    collect_assets(&dir, &dir, 0, &mut assets)?;
    Ok(LayerSource {
        layer,
        file,
        assets,
        positions,
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
    depth: usize,
    out: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), LoadError> {
    if depth > MAX_DEPTH {
        return Err(refused(
            dir,
            &format!("folders nested more than {MAX_DEPTH} deep in a layer folder"),
        ));
    }
    let entries = fs::read_dir(dir).map_err(|source| LoadError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    // Sorted, so that the first problem reported does not depend on the
    // order the file system lists entries in.
    let mut paths = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| LoadError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
    paths.sort();
    for path in paths {
        let own = fs::symlink_metadata(&path).map_err(|source| LoadError::Read {
            path: path.clone(),
            source,
        })?;
        let kind = if own.file_type().is_symlink() {
            match fs::metadata(&path) {
                Ok(target) if target.is_file() => Kind::File,
                Ok(target) if target.is_dir() => {
                    return Err(refused(
                        &path,
                        "a symbolic link to a folder (it could lead back to itself): copy the folder, or link its files one by one",
                    ))
                }
                Ok(target) => {
                    return Err(refused(
                        &path,
                        &format!("a symbolic link to {}", special_kind(&target.file_type())),
                    ))
                }
                Err(e) => {
                    return Err(refused(
                        &path,
                        &format!("a symbolic link that leads nowhere ({e})"),
                    ))
                }
            }
        } else if own.is_dir() {
            Kind::Dir
        } else if own.is_file() {
            Kind::File
        } else {
            return Err(refused(&path, special_kind(&own.file_type())));
        };
        match kind {
            Kind::Dir => collect_assets(root, &path, depth + 1, out)?,
            Kind::File if path.extension().is_some_and(|e| e == "md") => {}
            Kind::File => {
                if out.len() >= MAX_LAYER_FILES {
                    return Err(refused(
                        root,
                        &format!("more than {MAX_LAYER_FILES} files in one layer folder"),
                    ));
                }
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, read(&path)?);
            }
        }
    }
    Ok(())
}

enum Kind {
    File,
    Dir,
}

fn special_kind(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

fn refused(path: &Path, what: &str) -> LoadError {
    LoadError::Invalid {
        path: path.to_path_buf(),
        line: None,
        message: format!("refused: {what}; ingot reads regular files only"),
    }
}

/// Reads a regular file (after symbolic links), at most
/// [`MAX_INPUT_BYTES`]. The type is checked before opening: opening a
/// FIFO blocks until something writes to it.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    let io = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(refused(path, "a folder"));
    }
    if !meta.is_file() {
        return Err(refused(path, special_kind(&meta.file_type())));
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .map_err(io)?
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(LoadError::Invalid {
            path: path.to_path_buf(),
            line: None,
            message: format!(
                "larger than {} MiB: no user-data can carry it (Nova takes 49,149 bytes)",
                MAX_INPUT_BYTES / 1024 / 1024
            ),
        });
    }
    Ok(bytes)
}

/// The typed value, and where its keys are. A key repeated in any mapping
/// is refused at the line of its second appearance.
pub(crate) fn parse<T: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
) -> Result<(T, Positions), LoadError> {
    let value = serde_yaml::from_slice(bytes).map_err(|e| LoadError::yaml(path, e))?;
    match yaml::scan(bytes) {
        Ok(positions) => Ok((value, positions)),
        Err(ScanError::Duplicate(d)) => Err(LoadError::Yaml {
            path: path.to_path_buf(),
            line: d.second.line,
            column: d.second.column,
            message: format!(
                "{}key `{}` is given twice (first at line {}): YAML would keep only the last one",
                if d.within.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", d.within)
                },
                d.key,
                d.first.line
            ),
        }),
        Err(ScanError::Syntax { pos, message }) => Err(LoadError::Yaml {
            path: path.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message,
        }),
    }
}

/// A layer's state paths, each once and none inside another: two bind
/// mounts, one inside the other, would depend on their order. The error
/// is placed at the second entry.
fn check_state(file: &Path, layer: &Layer, positions: &Positions) -> Result<(), LoadError> {
    for (i, a) in layer.state.iter().enumerate() {
        for b in &layer.state[..i] {
            if let Some(e) = super::layer::state_overlap(a, b) {
                let item = format!("state[{i}]");
                let pos = positions.get(&item);
                return Err(LoadError::Yaml {
                    path: file.to_path_buf(),
                    line: pos.map_or(1, |p| p.line),
                    column: pos.map_or(1, |p| p.column),
                    message: format!("{item}: {e}"),
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn check_schema(path: &Path, bytes: &[u8], schema: u32) -> Result<(), LoadError> {
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
pub(crate) fn invalid(path: &Path, bytes: &[u8], key: &str, message: &str) -> LoadError {
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
            .map(|_| ())
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
    fn state(entries: &str) -> String {
        format!("{HEAD}state:\n{entries}")
    }

    #[test]
    fn state_paths_are_read_with_owner_group_and_mode() {
        let yaml = state(
            "  - {path: /etc/letsencrypt, owner: root, group: root, mode: \"0755\"}\n  - {path: /var/lib/prometheus, owner: prometheus, group: prometheus, mode: \"0750\"}\n",
        );
        let (layer, _) = parse::<Layer>(Path::new("x"), yaml.as_bytes()).unwrap();
        assert_eq!(layer.state.len(), 2);
        assert_eq!(layer.state[1].path, "/var/lib/prometheus");
        assert_eq!(layer.state[1].owner, "prometheus");
        assert_eq!(layer.state[1].mode.octal(), "0750");
    }

    /// Each refusal, with the place it is written at.
    #[test]
    fn state_paths_are_refused_where_they_are_written() {
        let mut wrong = Vec::new();
        let entry = |path: &str| {
            state(&format!(
                "  - {{path: {path}, owner: root, group: root, mode: \"0755\"}}\n"
            ))
        };
        for (yaml, want) in [
            (
                state("  - {path: /x, owner: root, group: root, mode: \"0755\", size: 1}\n"),
                "layers/x/layer.yaml:7:56: state[0]: unknown field `size`, expected one of `path`, `owner`, `group`, `mode`",
            ),
            (
                state("  - {path: /x, owner: root, group: root}\n"),
                "layers/x/layer.yaml:7:5: state[0]: missing field `mode`",
            ),
            (
                entry("var/lib/x"),
                "layers/x/layer.yaml:7:3: state: state path \"var/lib/x\" must be absolute",
            ),
            (
                entry("/var/lib/../x"),
                "layers/x/layer.yaml:7:3: state: state path \"/var/lib/../x\" contains `..`: write the path it means",
            ),
            (
                entry("/var//lib/./x"),
                "layers/x/layer.yaml:7:3: state: state path \"/var//lib/./x\" is written \"/var/lib/x\" in its normal form",
            ),
            (
                entry("/"),
                "layers/x/layer.yaml:7:3: state: state path \"/\" is the whole system: declare the folders or files that hold state",
            ),
            (
                entry("\"/srv/my data\""),
                "layers/x/layer.yaml:7:3: state: state path \"/srv/my data\" holds a character a systemd unit line would not carry as it is: use letters, digits, `/`, `.`, `_`, `-`, `+` and `@`",
            ),
            (
                entry("/var/lib"),
                "layers/x/layer.yaml:7:3: state: state path /var/lib is the data disk's mount point, inside it or a folder holding it: it cannot be kept on the data disk",
            ),
            (
                entry("/var/lib/ingot-state/x"),
                "layers/x/layer.yaml:7:3: state: state path /var/lib/ingot-state/x is the data disk's mount point, inside it or a folder holding it: it cannot be kept on the data disk",
            ),
            (
                entry("/run/x"),
                "layers/x/layer.yaml:7:3: state: state path /run/x is on a virtual file system: it cannot be kept on the data disk",
            ),
            (
                state("  - {path: /x, owner: Root, group: root, mode: \"0755\"}\n"),
                "layers/x/layer.yaml:7:3: state: state path /x: owner user or group name \"Root\" is refused: use lower-case letters, digits, `_` and `-`, starting with a letter or `_` (at most 32 characters)",
            ),
            (
                state("  - {path: /x, owner: root, group: \"a b\", mode: \"0755\"}\n"),
                "layers/x/layer.yaml:7:3: state: state path /x: group user or group name \"a b\" is refused: use lower-case letters, digits, `_` and `-`, starting with a letter or `_` (at most 32 characters)",
            ),
            (
                state("  - {path: /x, owner: root, group: root, mode: 755}\n"),
                "layers/x/layer.yaml:7:5: state[0]: file mode 755 is a number: write it as a quoted octal string such as \"0755\" (cloud-init would read 755 as a decimal mode)",
            ),
        ] {
            let got = layer_err(&yaml);
            if got != want {
                wrong.push(format!("{yaml}\n  got:  {got}\n  want: {want}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_state_path_once_and_none_inside_another() {
        let err = |entries: &str| {
            let path = Path::new("layers/x/layer.yaml");
            let yaml = state(entries);
            let (layer, positions) = parse::<Layer>(path, yaml.as_bytes()).unwrap();
            check_state(path, &layer, &positions)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("  - {path: /x, owner: root, group: root, mode: \"0755\"}\n  - {path: /x, owner: root, group: root, mode: \"0700\"}\n"),
            "layers/x/layer.yaml:8:5: state[1]: state path /x is declared twice"
        );
        assert_eq!(
            err("  - {path: /x/y, owner: root, group: root, mode: \"0755\"}\n  - {path: /x, owner: root, group: root, mode: \"0700\"}\n"),
            "layers/x/layer.yaml:8:5: state[1]: state path /x/y is inside state path /x: declare only /x, whose bind mount already holds it"
        );
        // /x and /xy are neighbours, not nested.
        let path = Path::new("x");
        let yaml = state("  - {path: /x, owner: root, group: root, mode: \"0755\"}\n  - {path: /xy, owner: root, group: root, mode: \"0700\"}\n");
        let (layer, positions) = parse::<Layer>(path, yaml.as_bytes()).unwrap();
        assert!(check_state(path, &layer, &positions).is_ok());
    }
}
