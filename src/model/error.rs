use std::path::PathBuf;
use thiserror::Error;

/// A problem reading one input file. Every message starts with the place,
/// `file:line:column:` when it is known, the way compilers print it, so that
/// editors and CI annotate the line.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Yaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("layer `{name}` (wanted by {wanted_by}) not found: no {}", path.display())]
    LayerNotFound {
        name: String,
        path: PathBuf,
        wanted_by: String,
    },
}

impl LoadError {
    pub(crate) fn yaml(path: &std::path::Path, err: serde_yaml::Error) -> LoadError {
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        // serde_yaml appends " at line L column C"; the prefix already says it.
        let mut message = err.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        LoadError::Yaml {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    }
}
