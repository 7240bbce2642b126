//! The NoCloud seed: an ISO 9660 volume labelled `cidata` holding
//! `user-data`, `meta-data` and optionally `vendor-data`, which cloud-init
//! finds without a network.

use super::{run_checked as run, QemuError};
use std::path::Path;
use tokio::process::Command;

pub async fn write_seed(
    dir: &Path,
    iso: &Path,
    user_data: &[u8],
    meta_data: &str,
    vendor_data: Option<&str>,
) -> Result<(), QemuError> {
    let files = dir.join("seed");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| QemuError::Io { path, source }
    };
    tokio::fs::create_dir_all(&files)
        .await
        .map_err(io(&files))?;
    let ud = files.join("user-data");
    tokio::fs::write(&ud, user_data).await.map_err(io(&ud))?;
    let md = files.join("meta-data");
    tokio::fs::write(&md, meta_data).await.map_err(io(&md))?;
    let mut cmd = Command::new("genisoimage");
    cmd.args(["-quiet", "-output"])
        .arg(iso)
        .args(["-volid", "cidata", "-joliet", "-rock"])
        .arg(&ud)
        .arg(&md);
    if let Some(vd) = vendor_data {
        let path = files.join("vendor-data");
        tokio::fs::write(&path, vd).await.map_err(io(&path))?;
        cmd.arg(&path);
    }
    run(&mut cmd, "genisoimage").await.map(|_| ())
}
