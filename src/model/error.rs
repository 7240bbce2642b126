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

/// Why a layer's `state:` entry is refused. Raised while the layer file is
/// read (serde places it at its file, line and column); the messages are
/// pinned by tests below.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    #[error("state path {path:?} {reason}")]
    BadPath { path: String, reason: String },
    #[error("state path {path:?} is written {normal:?} in its normal form")]
    NotNormal { path: String, normal: String },
    #[error("state path \"/\" is the whole system: declare the folders or files that hold state")]
    Root,
    #[error("state path {path} is {why}: it cannot be kept on the data disk")]
    Reserved { path: String, why: &'static str },
    #[error("state path {path}: {what} {message}")]
    BadAccount {
        path: String,
        what: &'static str,
        message: String,
    },
    #[error("state path {path} is declared twice")]
    Duplicate { path: String },
    #[error("state path {inner} is inside state path {outer}: declare only {outer}, whose bind mount already holds it")]
    Nested { inner: String, outer: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_messages() {
        let cases = [
            (
                StateError::BadPath {
                    path: "etc/x".into(),
                    reason: "must be absolute".into(),
                },
                "state path \"etc/x\" must be absolute",
            ),
            (
                StateError::NotNormal {
                    path: "/var//lib/x/".into(),
                    normal: "/var/lib/x".into(),
                },
                "state path \"/var//lib/x/\" is written \"/var/lib/x\" in its normal form",
            ),
            (
                StateError::Root,
                "state path \"/\" is the whole system: declare the folders or files that hold state",
            ),
            (
                StateError::Reserved {
                    path: "/proc/x".into(),
                    why: "on a virtual file system",
                },
                "state path /proc/x is on a virtual file system: it cannot be kept on the data disk",
            ),
            (
                StateError::BadAccount {
                    path: "/var/lib/x".into(),
                    what: "owner",
                    message: "user or group name \"Root\" is refused".into(),
                },
                "state path /var/lib/x: owner user or group name \"Root\" is refused",
            ),
            (
                StateError::Duplicate {
                    path: "/var/lib/x".into(),
                },
                "state path /var/lib/x is declared twice",
            ),
            (
                StateError::Nested {
                    inner: "/var/lib/x/y".into(),
                    outer: "/var/lib/x".into(),
                },
                "state path /var/lib/x/y is inside state path /var/lib/x: declare only /var/lib/x, whose bind mount already holds it",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
