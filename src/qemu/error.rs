use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum QemuError {
    #[error("cannot run {program}: {source} (install it with scripts/deps-qemu)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
