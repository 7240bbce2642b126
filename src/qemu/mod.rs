//! QEMU as ingot drives it: `qemu-img` for disks, `qemu-system-x86_64` for
//! virtual machines, a NoCloud seed, and the serial console as the channel
//! a guest reports on. Knows nothing of images, layers or builds.

mod error;
mod img;
mod seed;
mod serial;
mod vm;

pub use error::QemuError;
pub use img::{convert, create_overlay, Compression};
pub use seed::write_seed;
pub use serial::SerialLog;
pub use vm::{Accel, Boot, DataDisk, Forward, QemuConfig, Vm, VmSpec};

/// Runs a command to completion; its stderr becomes the error.
pub async fn run_checked(
    cmd: &mut tokio::process::Command,
    what: &str,
) -> Result<String, QemuError> {
    let out = cmd
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| QemuError::Spawn {
            program: what.to_string(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(QemuError::Failed {
            program: what.to_string(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
