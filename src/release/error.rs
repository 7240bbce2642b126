use crate::cloud::CloudError;
use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// What the cleanup of a failed or cancelled publish did with the image
/// record it had created.
#[derive(Debug)]
pub enum Cleanup {
    /// Nothing had been created yet.
    Nothing,
    Deleted {
        id: String,
    },
    Failed {
        id: String,
        error: Box<CloudError>,
    },
}

impl fmt::Display for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cleanup::Nothing => write!(f, "nothing was created in Glance"),
            Cleanup::Deleted { id } => write!(f, "the unfinished image {id} was deleted"),
            Cleanup::Failed { id, error } => write!(
                f,
                "deleting the unfinished image {id} failed too ({error}): delete it with `openstack image delete {id}`"
            ),
        }
    }
}

#[derive(Debug, Error)]
pub enum ReleaseError {
    #[error("{}: {message}", path.display())]
    Artifact { path: PathBuf, message: String },
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Local(#[from] crate::artifact::ArtifactError),
    #[error("image {image}: property {key}: {message}")]
    Property {
        image: String,
        key: String,
        message: String,
    },
    #[error("channel `{name}`: expected lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit, at most 64 characters")]
    BadChannel { name: String },
    #[error("--keep {keep}: keep at least 1 release")]
    KeepZero { keep: usize },
    #[error("another publish of {digest} is in progress: image {id} is `{status}` since {since}; try again once it ends, or delete it if that run was killed")]
    InProgress {
        digest: String,
        id: String,
        status: String,
        since: String,
    },
    #[error("upload of {name} failed after {attempts} attempt(s): {source}; {cleanup}")]
    Upload {
        name: String,
        attempts: u32,
        #[source]
        source: Box<ReleaseError>,
        cleanup: Cleanup,
    },
    #[error("image {id}: {what} mismatch: Glance has {theirs}, ingot sent {ours}")]
    Mismatch {
        id: String,
        what: &'static str,
        theirs: String,
        ours: String,
    },
    #[error("image {id} is `{status}` after its upload, expected `active`")]
    NotActive { id: String, status: String },
    #[error("cancelled (Ctrl-C): {cleanup}")]
    Cancelled { cleanup: Cleanup },
    #[error("{}", no_release(image, selector, available))]
    NoRelease {
        image: String,
        selector: String,
        available: Vec<String>,
    },
    #[error("image {image}: `{selector}` matches {} releases: {}; name one by its digest or id", candidates.len(), candidates.join(", "))]
    Ambiguous {
        image: String,
        selector: String,
        candidates: Vec<String>,
    },
    #[error("image {image} release {version} is `{status}`: only active releases can be promoted")]
    PromoteInactive {
        image: String,
        version: String,
        status: String,
    },
    #[error("channel {channel} of {image}: read back {found:?} after the move to {expected}; another promote may be running, run it again")]
    ReadBack {
        image: String,
        channel: String,
        expected: String,
        found: Vec<String>,
    },
    #[error("prune {image}: the cloud has no compute service in its catalog, so ingot cannot tell which servers use these images; nothing was deleted")]
    NoCompute { image: String },
    #[error("prune {image}: {failed} of {total} deletions failed: {}", errors.join("; "))]
    PruneFailed {
        image: String,
        failed: usize,
        total: usize,
        errors: Vec<String>,
    },
}

fn no_release(image: &str, selector: &str, available: &[String]) -> String {
    if available.is_empty() {
        format!("image {image} has no release in this project (no Glance image with ingot_image={image})")
    } else {
        format!(
            "image {image} has no release `{selector}`; it has: {}",
            available.join(", ")
        )
    }
}

impl ReleaseError {
    /// A stable name for `--json` consumers.
    pub fn kind(&self) -> &'static str {
        match self {
            ReleaseError::Artifact { .. } | ReleaseError::Local(_) => "artifact",
            ReleaseError::Cloud(CloudError::Config(_)) => "cloud_config",
            ReleaseError::Cloud(CloudError::Auth { .. }) => "auth",
            ReleaseError::Cloud(_) => "cloud",
            ReleaseError::Property { .. } => "property",
            ReleaseError::BadChannel { .. } | ReleaseError::KeepZero { .. } => "usage",
            ReleaseError::InProgress { .. } => "in_progress",
            ReleaseError::Upload { .. } => "upload",
            ReleaseError::Mismatch { .. } | ReleaseError::NotActive { .. } => "verify",
            ReleaseError::Cancelled { .. } => "cancelled",
            ReleaseError::NoRelease { .. } | ReleaseError::Ambiguous { .. } => "release_not_found",
            ReleaseError::PromoteInactive { .. } | ReleaseError::ReadBack { .. } => "promote",
            ReleaseError::NoCompute { .. } | ReleaseError::PruneFailed { .. } => "prune",
        }
    }

    /// Input the user must fix (exit code 2).
    pub fn is_input(&self) -> bool {
        match self {
            ReleaseError::Artifact { .. }
            | ReleaseError::Local(_)
            | ReleaseError::Property { .. }
            | ReleaseError::BadChannel { .. }
            | ReleaseError::KeepZero { .. }
            | ReleaseError::NoRelease { .. }
            | ReleaseError::Ambiguous { .. }
            | ReleaseError::PromoteInactive { .. } => true,
            ReleaseError::Cloud(e) => e.is_input(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_failure_names_the_cause_and_the_cleanup() {
        let cause = ReleaseError::Cloud(CloudError::Transport {
            service: "glance",
            method: "PUT".into(),
            url: "http://g/v2/images/1/file".into(),
            message: "connection closed before message completed".into(),
        });
        let e = ReleaseError::Upload {
            name: "web-1".into(),
            attempts: 5,
            source: Box::new(cause),
            cleanup: Cleanup::Failed {
                id: "1".into(),
                error: Box::new(CloudError::Transport {
                    service: "glance",
                    method: "DELETE".into(),
                    url: "http://g/v2/images/1".into(),
                    message: "connection refused".into(),
                }),
            },
        };
        assert_eq!(
            e.to_string(),
            "upload of web-1 failed after 5 attempt(s): glance: PUT http://g/v2/images/1/file: connection closed before message completed; deleting the unfinished image 1 failed too (glance: DELETE http://g/v2/images/1: connection refused): delete it with `openstack image delete 1`"
        );
    }

    #[test]
    fn no_release_messages() {
        let e = ReleaseError::NoRelease {
            image: "web".into(),
            selector: "9".into(),
            available: vec![],
        };
        assert_eq!(
            e.to_string(),
            "image web has no release in this project (no Glance image with ingot_image=web)"
        );
        let e = ReleaseError::NoRelease {
            image: "web".into(),
            selector: "9".into(),
            available: vec!["1.0 (abc)".into()],
        };
        assert_eq!(
            e.to_string(),
            "image web has no release `9`; it has: 1.0 (abc)"
        );
    }
}
