//! The upload stream: a thread reads the file in chunks and hashes them
//! (sha512 as Glance's `os_hash_value`, sha256 as the artifact's manifest)
//! while the HTTP client sends earlier chunks. A bounded channel between
//! them keeps memory at a few chunks whatever the image size, and hashing
//! on its own thread keeps it off the sending path.

use bytes::Bytes;
use sha2::{Digest, Sha256, Sha512};
use std::io::Read;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the sender: 4 MiB in flight at most.
const AHEAD: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashes {
    pub sha512: String,
    pub sha256: String,
    pub bytes: u64,
}

/// Chunks of the file, counted in `sent` as the HTTP client takes them.
pub struct FileStream {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    sent: Arc<AtomicU64>,
}

impl futures_core::Stream for FileStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        polled
    }
}

/// Starts reading `path`. The hashes arrive once the whole file was read
/// (an error or a dropped stream ends the thread without them).
pub fn open(
    path: &Path,
    sent: Arc<AtomicU64>,
) -> std::io::Result<(FileStream, oneshot::Receiver<Hashes>)> {
    let mut file = std::fs::File::open(path)?;
    let (tx, rx) = mpsc::channel(AHEAD);
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("ingot-upload-read".into())
        .spawn(move || {
            let mut sha512 = Sha512::new();
            let mut sha256 = Sha256::new();
            let mut bytes = 0u64;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = match read_full(&mut file, &mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                sha512.update(&buf);
                sha256.update(&buf);
                bytes += n as u64;
                // The receiver is gone: the upload failed or was cancelled.
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
            let _ = done_tx.send(Hashes {
                sha512: hex(&sha512.finalize()),
                sha256: hex(&sha256.finalize()),
                bytes,
            });
        })?;
    Ok((FileStream { rx, sent }, done_rx))
}

/// Fills `buf` unless the file ends first; returns how much was read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn streams_the_whole_file_and_hashes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let (mut s, hashes) = open(&path, sent.clone()).unwrap();
        let mut got = Vec::new();
        while let Some(chunk) =
            poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut s), cx)).await
        {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, data);
        assert_eq!(sent.load(Ordering::Relaxed), data.len() as u64);
        let h = hashes.await.unwrap();
        assert_eq!(h.sha256, hex(&Sha256::digest(&data)));
        assert_eq!(h.sha512, hex(&Sha512::digest(&data)));
        assert_eq!(h.bytes, data.len() as u64);
    }
}
