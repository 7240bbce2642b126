//! The one user-facing error: each subsystem's error folded in, with the
//! exit code CI acts on.

use crate::compose::ComposeError;
use crate::model::LoadError;
use crate::render::RenderError;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] Box<LoadError>),
    #[error("image {image}: {source}")]
    Compose {
        image: String,
        #[source]
        source: Box<ComposeError>,
    },
    #[error("image {image}: {source}")]
    Render {
        image: String,
        #[source]
        source: RenderError,
    },
    #[error("{}: {message}", path.display())]
    Secrets { path: PathBuf, message: String },
    #[error("{variable} {problem}: give the secret as UTF-8 text (its value is not shown)")]
    SecretEnv {
        variable: String,
        problem: &'static str,
    },
    #[error("--set {given}: expected KEY=VALUE")]
    BadSet { given: String },
    #[error(transparent)]
    Build(Box<crate::build::BuildError>),
    #[error("verification failed: {failed} of {total} checks; serial log: {}", log.display())]
    VerifyFailed {
        failed: usize,
        total: usize,
        log: PathBuf,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Release(Box<crate::release::ReleaseError>),
    #[error(transparent)]
    Deploy(Box<crate::deploy::DeployError>),
    #[error(transparent)]
    Launch(Box<crate::deploy::launch::LaunchError>),
    #[error("cancelled (Ctrl-C): the VM and helper processes were stopped and staging folders removed; nothing was left behind")]
    Cancelled,
    #[error("no subcommand `{name}`; the subcommands are {}", known.join(", "))]
    UnknownSubcommand { name: String, known: Vec<String> },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Exit codes: 2 for input the user must fix, 1 for everything else.
pub const EXIT_INVALID_INPUT: i32 = 2;
pub const EXIT_FAILURE: i32 = 1;
/// 128 + SIGINT, what shells report for a command stopped by Ctrl-C.
pub const EXIT_CANCELLED: i32 = 130;

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        Error::Load(Box::new(e))
    }
}

impl From<crate::build::BuildError> for Error {
    fn from(e: crate::build::BuildError) -> Self {
        Error::Build(Box::new(e))
    }
}

impl From<crate::release::ReleaseError> for Error {
    fn from(e: crate::release::ReleaseError) -> Self {
        Error::Release(Box::new(e))
    }
}

impl From<crate::deploy::DeployError> for Error {
    fn from(e: crate::deploy::DeployError) -> Self {
        Error::Deploy(Box::new(e))
    }
}

impl From<crate::deploy::launch::LaunchError> for Error {
    fn from(e: crate::deploy::launch::LaunchError) -> Self {
        Error::Launch(Box::new(e))
    }
}

impl From<crate::cloud::CloudError> for Error {
    fn from(e: crate::cloud::CloudError) -> Self {
        Error::Release(Box::new(e.into()))
    }
}

impl Error {
    pub fn code(&self) -> i32 {
        match self {
            Error::Load(_)
            | Error::Compose { .. }
            | Error::Secrets { .. }
            | Error::SecretEnv { .. }
            | Error::BadSet { .. }
            | Error::UnknownSubcommand { .. }
            | Error::Render {
                source: RenderError::TooLarge { .. },
                ..
            } => EXIT_INVALID_INPUT,
            Error::Build(e) => e.code(),
            Error::Deploy(e) => e.code(),
            Error::Launch(e) => e.code(),
            Error::Unsupported(_) => EXIT_INVALID_INPUT,
            Error::Cancelled => EXIT_CANCELLED,
            Error::Release(e) => match **e {
                crate::release::ReleaseError::Cancelled { .. } => EXIT_CANCELLED,
                ref other if other.is_input() => EXIT_INVALID_INPUT,
                _ => EXIT_FAILURE,
            },
            Error::Render { .. } | Error::Write { .. } | Error::VerifyFailed { .. } => EXIT_FAILURE,
        }
    }

    /// A stable name for `--json` consumers.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Load(e) => match **e {
                LoadError::Read { .. } => "read",
                LoadError::Yaml { .. } => "yaml",
                LoadError::Invalid { .. } => "invalid",
                LoadError::LayerNotFound { .. } => "layer_not_found",
            },
            Error::Compose { .. } => "composition",
            Error::Render { .. } => "render",
            Error::Secrets { .. } | Error::SecretEnv { .. } => "secrets",
            Error::BadSet { .. } | Error::UnknownSubcommand { .. } => "usage",
            Error::Write { .. } => "write",
            Error::Build(_) => "build",
            Error::VerifyFailed { .. } => "verify",
            Error::Unsupported(_) => "unsupported",
            Error::Cancelled => "cancelled",
            Error::Release(e) => e.kind(),
            Error::Deploy(e) => e.kind(),
            Error::Launch(e) => e.kind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Phase;

    #[test]
    fn messages_and_codes() {
        let e = Error::BadSet {
            given: "domain".into(),
        };
        assert_eq!(e.to_string(), "--set domain: expected KEY=VALUE");
        assert_eq!(e.code(), 2);

        let e = Error::UnknownSubcommand {
            name: "rendr".into(),
            known: vec!["check".into(), "render".into()],
        };
        assert_eq!(
            e.to_string(),
            "no subcommand `rendr`; the subcommands are check, render"
        );
        assert_eq!(e.code(), 2);

        let e = Error::Compose {
            image: "web".into(),
            source: Box::new(ComposeError::Conflict {
                layer: "a".into(),
                other: "b".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "image web: layer `a` conflicts with layer `b`: an image cannot have both"
        );
        assert_eq!(e.code(), 2);

        let e = Error::Render {
            image: "web".into(),
            source: RenderError::Shape {
                phase: Phase::Boot,
                message: "x".into(),
            },
        };
        assert_eq!(e.code(), 1);
        let e = Error::Write {
            path: "out/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.to_string(), "out/x: cannot write: permission denied");
        assert_eq!(e.code(), 1);
    }
}
