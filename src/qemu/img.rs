//! Disks with qemu-img: copy-on-write overlays and compressed conversion.

use super::{run_checked as run, QemuError};
use std::path::Path;
use tokio::process::Command;

/// How the golden image is compressed. zstd decompresses several times
/// faster than zlib and needs QEMU ≥ 5.1 wherever the image is read, which
/// every supported OpenStack release has; zlib is for older readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Zlib,
    None,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zstd" => Ok(Compression::Zstd),
            "zlib" => Ok(Compression::Zlib),
            "none" => Ok(Compression::None),
            _ => Err(format!(
                "unknown compression `{s}`: expected zstd, zlib or none"
            )),
        }
    }
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Zlib => "zlib",
            Compression::None => "none",
        }
    }
}

/// A qcow2 overlay whose reads fall through to `base` (which is never
/// written). `base` must be an absolute path: qemu resolves it relative to
/// the overlay otherwise.
pub async fn create_overlay(
    qemu_img: &Path,
    base: &Path,
    base_format: &str,
    overlay: &Path,
) -> Result<(), QemuError> {
    let mut cmd = Command::new(qemu_img);
    cmd.args(["create", "-q", "-f", "qcow2", "-F", base_format, "-b"])
        .arg(base)
        .arg(overlay);
    run(&mut cmd, "qemu-img create").await.map(|_| ())
}

/// A standalone (no backing file) qcow2 of `src`, compressed.
pub async fn convert(
    qemu_img: &Path,
    src: &Path,
    dst: &Path,
    compression: Compression,
) -> Result<(), QemuError> {
    let mut cmd = Command::new(qemu_img);
    cmd.args(["convert", "-O", "qcow2"]);
    match compression {
        Compression::Zstd => cmd.args(["-c", "-o", "compression_type=zstd"]),
        Compression::Zlib => cmd.args(["-c", "-o", "compression_type=zlib"]),
        Compression::None => &mut cmd,
    };
    // -W: out-of-order writes, the conversion's parallel speed-up.
    cmd.arg("-W").arg(src).arg(dst);
    run(&mut cmd, "qemu-img convert").await.map(|_| ())
}
