//! `check`/`render --format json|github`: each error as a record with its
//! place (file, line, column), for CI services and editors.
//!
//! The places come from the errors themselves: a YAML error's line and
//! column (`LoadError::Yaml`), a validation's line (`LoadError::Invalid`),
//! the sites a composition error was located at (`compose::locate`), one
//! record per site, so that a clash shows on both lines it concerns. An
//! error without a place is reported against the image file.
//!
//! ```text
//! ::error file=layers/web/layer.yaml,line=24,title=ingot%3A port_clash::image web: port 22/tcp ...
//! ```

use crate::compose::ComposeError;
use crate::error::Error;
use crate::model::LoadError;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One error at one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The layer the place belongs to.
    pub layer: Option<String>,
    /// The item in the file (`ports[0]`, `params.fqdn`).
    pub field: Option<String>,
    pub message: String,
    /// A stable name of the kind of error (`yaml`, `port_clash`, ...).
    pub code: &'static str,
}

/// The records of `e`; `image` is the image file the command was given,
/// the place of an error that has none of its own.
pub fn diagnostics(e: &Error, image: &Path) -> Vec<Diagnostic> {
    let plain = |file: Option<&Path>, line, column| Diagnostic {
        file: Some(file.unwrap_or(image).to_path_buf()),
        line,
        column,
        layer: file.and_then(layer_of_file),
        field: None,
        message: e.to_string(),
        code: e.kind(),
    };
    match e {
        Error::Load(load) => match &**load {
            LoadError::Read { path, .. } => vec![plain(Some(path), None, None)],
            LoadError::Yaml {
                path,
                line,
                column,
                message,
            } => vec![Diagnostic {
                // The place is in the properties; the text need not repeat it.
                message: message.clone(),
                ..plain(Some(path), Some(*line), Some(*column))
            }],
            LoadError::Invalid {
                path,
                line,
                message,
            } => vec![Diagnostic {
                message: message.clone(),
                ..plain(Some(path), *line, None)
            }],
            // The missing file has no line to show; whoever wanted it does,
            // but only its name is known: the image file is the place.
            LoadError::LayerNotFound { .. } => vec![plain(None, None, None)],
        },
        Error::Compose {
            image: name,
            source,
        } => {
            let (inner, sites) = match &**source {
                ComposeError::At { error, sites } => (&**error, sites.as_slice()),
                other => (other, &[][..]),
            };
            let message = format!("image {name}: {inner}");
            let layer = inner.layer().map(str::to_string);
            if sites.is_empty() {
                return vec![Diagnostic {
                    layer,
                    message,
                    code: inner.kind(),
                    ..plain(None, None, None)
                }];
            }
            sites
                .iter()
                .map(|s| Diagnostic {
                    file: Some(s.file.clone()),
                    line: s.line,
                    column: None,
                    layer: layer_of_file(&s.file).or_else(|| layer.clone()),
                    field: (!s.item.is_empty()).then(|| s.item.clone()),
                    message: message.clone(),
                    code: inner.kind(),
                })
                .collect()
        }
        _ => vec![plain(None, None, None)],
    }
}

/// `layers/NAME/layer.yaml` and the files beside it belong to layer NAME.
fn layer_of_file(file: &Path) -> Option<String> {
    let dir = file.parent()?;
    let in_layers = dir.parent()?.file_name()? == "layers";
    let is_layer_file = file.file_name()? == "layer.yaml";
    (in_layers || is_layer_file).then(|| dir.file_name()?.to_str().map(str::to_string))?
}

/// The record as a GitHub Actions workflow command. The message and the
/// properties are escaped as GitHub's toolkit escapes them (`%`, CR, LF;
/// in properties also `:` and `,`), so that no text of an input file can
/// end the command or start another: the command is always one line.
pub fn github(d: &Diagnostic) -> String {
    let mut props = Vec::new();
    if let Some(f) = &d.file {
        props.push(format!("file={}", property(&f.to_string_lossy())));
    }
    if let Some(l) = d.line {
        props.push(format!("line={l}"));
    }
    if let Some(c) = d.column {
        props.push(format!("col={c}"));
    }
    props.push(format!("title={}", property(&format!("ingot: {}", d.code))));
    format!("::error {}::{}", props.join(","), data(&d.message))
}

/// One record as one line of JSON.
pub fn json(d: &Diagnostic) -> String {
    serde_json::to_string(d).expect("json")
}

fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(file: &str, message: &str) -> Diagnostic {
        Diagnostic {
            file: Some(file.into()),
            line: Some(3),
            column: Some(7),
            layer: None,
            field: None,
            message: message.into(),
            code: "yaml",
        }
    }

    #[test]
    fn github_commands_escape_data_and_properties() {
        assert_eq!(
            github(&diag("images/web.yaml", "bad value")),
            "::error file=images/web.yaml,line=3,col=7,title=ingot%3A yaml::bad value"
        );
        // A message that tries to end the command and start another stays
        // on one line, its `%` escaped first so `%0A` cannot decode to LF.
        let line = github(&diag(
            "a,b:c%.yaml",
            "x%0A::warning::y\r\n::error file=z::w",
        ));
        assert_eq!(
            line,
            "::error file=a%2Cb%3Ac%25.yaml,line=3,col=7,title=ingot%3A yaml::x%250A::warning::y%0D%0A::error file=z::w"
        );
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn an_error_without_a_place_is_reported_against_the_image() {
        let e = Error::BadSet { given: "x".into() };
        let d = diagnostics(&e, Path::new("images/web.yaml"));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].file.as_deref(), Some(Path::new("images/web.yaml")));
        assert_eq!(d[0].line, None);
        assert_eq!(d[0].code, "usage");
        assert_eq!(
            github(&d[0]),
            "::error file=images/web.yaml,title=ingot%3A usage::--set x: expected KEY=VALUE"
        );
    }

    #[test]
    fn layers_are_named_by_their_folder() {
        assert_eq!(
            layer_of_file(Path::new("layers/web/layer.yaml")).as_deref(),
            Some("web")
        );
        assert_eq!(
            layer_of_file(Path::new("x/layers/web/site.conf.tera")).as_deref(),
            Some("web")
        );
        assert_eq!(layer_of_file(Path::new("images/web.yaml")), None);
    }
}
