use crate::base::BaseError;
use crate::qemu::QemuError;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Artifact(#[from] crate::artifact::ArtifactError),
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
    #[error(transparent)]
    Cloud(#[from] crate::cloud::CloudError),
    #[error(transparent)]
    Release(#[from] crate::release::ReleaseError),
    #[error("{}: cannot write the build journal: {source}", path.display())]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", preflight_report(problems))]
    Preflight {
        problems: Vec<crate::build::openstack::preflight::Problem>,
    },
    #[error("the build server {server} of {image} went to ERROR: {fault}")]
    ServerFailed {
        image: String,
        server: String,
        fault: String,
    },
    #[error("the snapshot {id} of {image} ended `{status}` instead of becoming active")]
    Snapshot {
        image: String,
        id: String,
        status: String,
    },
    #[error("the snapshot {id} of {image} is still `{status}` after {seconds} s")]
    SnapshotTimeout {
        image: String,
        id: String,
        status: String,
        seconds: u64,
    },
    #[error("image {id}: {what} mismatch: Glance says {theirs}, its data hashes to {ours}")]
    SnapshotMismatch {
        id: String,
        what: &'static str,
        theirs: String,
        ours: String,
    },
    #[error("build {build} of {image} failed: {source}; cleanup: {cleanup}")]
    CloudBuild {
        image: String,
        build: String,
        #[source]
        source: Box<BuildError>,
        cleanup: crate::build::openstack::Cleanup,
    },
    #[error("build of {image} cancelled (Ctrl-C); cleanup: {cleanup}")]
    CloudCancelled {
        image: String,
        cleanup: crate::build::openstack::Cleanup,
    },
}

fn preflight_report(problems: &[crate::build::openstack::preflight::Problem]) -> String {
    let mut s = format!(
        "preflight: {} problem{}, nothing was created:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str(&format!("\n  - {p}"));
    }
    s
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
            // The user named a folder that is not a whole artifact, or a
            // base the local builder cannot use: input to fix.
            BuildError::Artifact(_)
            | BuildError::Base(BaseError::InGlance { .. })
            | BuildError::Preflight { .. } => crate::error::EXIT_INVALID_INPUT,
            BuildError::Cloud(e) if e.is_input() => crate::error::EXIT_INVALID_INPUT,
            BuildError::Release(e) if e.is_input() => crate::error::EXIT_INVALID_INPUT,
            BuildError::Cancelled | BuildError::CloudCancelled { .. } => {
                crate::error::EXIT_CANCELLED
            }
            BuildError::CloudBuild { source, .. } => source.code(),
            _ => crate::error::EXIT_FAILURE,
        }
    }
}
