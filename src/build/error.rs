use crate::base::BaseError;
use crate::qemu::QemuError;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Input(#[from] Box<crate::error::Error>),
    #[error(transparent)]
    Base(#[from] BaseError),
    #[error(transparent)]
    Qemu(#[from] QemuError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bake of {image} failed: {reason}{}", log.as_ref().map(|l| format!("; serial log: {}", l.display())).unwrap_or_default())]
    BakeFailed {
        image: String,
        reason: String,
        log: Option<PathBuf>,
    },
    #[error("the bake of {image} did not finish within {seconds} s; the VM was stopped{}", log.as_ref().map(|l| format!("; serial log: {}", l.display())).unwrap_or_default())]
    Timeout {
        image: String,
        seconds: u64,
        log: Option<PathBuf>,
    },
    #[error(
        "cancelled: the VM was stopped and the staging folder removed; nothing was left behind"
    )]
    Cancelled,
}

impl From<crate::error::Error> for BuildError {
    fn from(e: crate::error::Error) -> Self {
        BuildError::Input(Box::new(e))
    }
}

impl BuildError {
    /// Points the error at where the serial log was kept.
    pub fn moved_log(self, kept: Option<PathBuf>) -> Self {
        match self {
            BuildError::BakeFailed { image, reason, .. } => BuildError::BakeFailed {
                image,
                reason,
                log: kept,
            },
            BuildError::Timeout { image, seconds, .. } => BuildError::Timeout {
                image,
                seconds,
                log: kept,
            },
            other => other,
        }
    }

    pub fn code(&self) -> i32 {
        match self {
            BuildError::Input(e) => e.code(),
            _ => crate::error::EXIT_FAILURE,
        }
    }
}
