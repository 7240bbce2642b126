//! Downloading an official cloud image and checking it against the
//! SHA256SUMS file published beside it, before anything uses it.

use super::{hex, BaseError};
use crate::progress::Progress;
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// The checksum `checksums_url` publishes for the file `url` names.
pub async fn expected_sha256(url: &str, checksums_url: &str) -> Result<String, BaseError> {
    let err = |message: String| BaseError::Download {
        url: checksums_url.to_string(),
        message,
    };
    let resp = client()
        .get(checksums_url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| err(e.to_string()))?;
    let text = resp.text().await.map_err(|e| err(e.to_string()))?;
    let file = url.rsplit('/').next().unwrap_or(url);
    find_checksum(&text, file).ok_or_else(|| BaseError::NotListed {
        checksums_url: checksums_url.to_string(),
        file: file.to_string(),
    })
}

/// Finds `file` in a SHA256SUMS text: `<hex>  <name>` or `<hex> *<name>`
/// (binary mode), one per line.
pub fn find_checksum(sums: &str, file: &str) -> Option<String> {
    sums.lines().find_map(|line| {
        let (sum, name) = line.trim().split_once(char::is_whitespace)?;
        let name = name.trim_start().trim_start_matches('*');
        let ok = sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit());
        (ok && name == file).then(|| sum.to_ascii_lowercase())
    })
}

/// Streams `url` into `dest`, hashing as it goes; a checksum mismatch
/// deletes the file. (`dest` is in a staging folder that is removed
/// however the operation ends, Ctrl-C included.)
pub async fn fetch_verified(
    url: &str,
    checksums_url: &str,
    expected: &str,
    dest: &Path,
    progress: &Progress,
) -> Result<(), BaseError> {
    let err = |message: String| BaseError::Download {
        url: url.to_string(),
        message,
    };
    let io = |source| BaseError::Io {
        path: dest.to_path_buf(),
        source,
    };
    let mut resp = client()
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| err(e.to_string()))?;
    let total = resp.content_length();
    let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut done: u64 = 0;
    let started = std::time::Instant::now();
    let mut shown = started;
    loop {
        let chunk = resp.chunk().await.map_err(|e| err(e.to_string()))?;
        let Some(chunk) = chunk else { break };
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
        done += chunk.len() as u64;
        if shown.elapsed().as_secs() >= 2 {
            shown = std::time::Instant::now();
            progress.bytes("downloading", done, total, started);
        }
    }
    file.flush().await.map_err(io)?;
    progress.bytes("downloaded", done, total, started);
    let actual = hex(&hasher.finalize());
    if actual != expected {
        drop(file);
        let _ = tokio::fs::remove_file(dest).await;
        return Err(BaseError::Mismatch {
            url: url.to_string(),
            checksums_url: checksums_url.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

fn client() -> reqwest::Client {
    // TLS verification stays on: a base image is the root of trust.
    reqwest::Client::builder()
        .user_agent(concat!("ingot/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("a client with static settings builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sums_formats() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let sums = format!("{a} *noble-server-cloudimg-amd64.img\n{b}  debian-12.qcow2\n");
        assert_eq!(
            find_checksum(&sums, "noble-server-cloudimg-amd64.img"),
            Some(a)
        );
        assert_eq!(
            find_checksum(&sums, "debian-12.qcow2"),
            Some("b".repeat(64))
        );
        assert_eq!(find_checksum(&sums, "other.img"), None);
        assert_eq!(find_checksum("nothex  x.img\n", "x.img"), None);
    }
}
