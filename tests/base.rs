//! `ingot base` with an official-image URL, against a real HTTP server on
//! 127.0.0.1 (the same code path as a download from a distribution's
//! mirror): the image is checked against the published SHA256SUMS before
//! it enters the cache, and a cached base needs no network.

use crate::common::{Test, IMAGE};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A minimal HTTP/1.1 file server: GET of a known path gets its bytes,
/// anything else a 404. Runs until the test process ends.
fn serve(files: BTreeMap<String, Vec<u8>>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // Skip the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            seen.lock().unwrap().push(path.clone());
            let (status, body) = match files.get(&path) {
                Some(b) => ("200 OK", b.clone()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    (port, log)
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn image_with_url(port: u16) -> String {
    IMAGE.replace(
        "base: {distro: debian-12, build: debian-archive}",
        &format!(
            "base:\n  distro: debian-12\n  url: http://127.0.0.1:{port}/images/debian-12-genericcloud-amd64.qcow2\n  checksums_url: http://127.0.0.1:{port}/images/SHA256SUMS"
        ),
    )
}

/// A small file with qcow2's magic, standing in for a cloud image.
fn disk() -> Vec<u8> {
    let mut d = b"QFI\xfb".to_vec();
    d.extend((0..200_000u32).map(|i| (i % 251) as u8));
    d
}

#[test]
fn a_verified_download_enters_the_cache_once() {
    let disk = disk();
    let sums = format!(
        "{}  other.qcow2\n{} *debian-12-genericcloud-amd64.qcow2\n",
        "0".repeat(64),
        hex(&disk)
    );
    let files = BTreeMap::from([
        (
            "/images/debian-12-genericcloud-amd64.qcow2".to_string(),
            disk.clone(),
        ),
        ("/images/SHA256SUMS".to_string(), sums.into_bytes()),
    ]);
    let (port, log) = serve(files);
    let t = Test::fixture().image("web", &image_with_url(port));
    let cache = t.path().join("cache");
    let cache = cache.to_str().unwrap();
    let r = t.run_args(&["--cache", cache, "base", "images/web.yaml"]);
    r.success().stdout_has(&hex(&disk));
    let stored = t
        .path()
        .join("cache/bases")
        .join(hex(&disk))
        .join("disk.img");
    assert_eq!(std::fs::read(&stored).unwrap(), disk);
    let meta = std::fs::read_to_string(stored.with_file_name("base.json")).unwrap();
    assert!(meta.contains("\"format\": \"qcow2\""), "{meta}");

    // Second time: from the cache, without asking the server.
    let before = log.lock().unwrap().len();
    t.run_args(&["--cache", cache, "base", "images/web.yaml"])
        .success()
        .stderr_has("base image cached");
    assert_eq!(log.lock().unwrap().len(), before);
}

#[test]
fn a_checksum_mismatch_is_refused_and_nothing_is_cached() {
    let disk = disk();
    let wrong = "ab".repeat(32);
    let files = BTreeMap::from([
        (
            "/images/debian-12-genericcloud-amd64.qcow2".to_string(),
            disk.clone(),
        ),
        (
            "/images/SHA256SUMS".to_string(),
            format!("{wrong}  debian-12-genericcloud-amd64.qcow2\n").into_bytes(),
        ),
    ]);
    let (port, _) = serve(files);
    let t = Test::fixture().image("web", &image_with_url(port));
    let cache = t.path().join("cache");
    let r = t.run_args(&[
        "--cache",
        cache.to_str().unwrap(),
        "base",
        "images/web.yaml",
    ]);
    r.code(1).stderr_has(&format!(
        "sha256 is {}, but http://127.0.0.1:{port}/images/SHA256SUMS says {wrong}; the download was discarded",
        hex(&disk)
    ));
    let left: Vec<_> = std::fs::read_dir(cache.join("bases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("recipe-"))
        .collect();
    assert!(left.is_empty(), "left in the cache: {left:?}");
}

#[test]
fn an_image_missing_from_the_sums_is_named() {
    let files = BTreeMap::from([(
        "/images/SHA256SUMS".to_string(),
        format!("{}  other.qcow2\n", "0".repeat(64)).into_bytes(),
    )]);
    let (port, _) = serve(files);
    let t = Test::fixture().image("web", &image_with_url(port));
    let cache = t.path().join("cache");
    t.run_args(&["--cache", cache.to_str().unwrap(), "base", "images/web.yaml"])
        .code(1)
        .stderr_has(&format!(
            "http://127.0.0.1:{port}/images/SHA256SUMS lists no checksum for `debian-12-genericcloud-amd64.qcow2`"
        ));
}
