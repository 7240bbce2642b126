//! Golden files: rendered output compared byte for byte with files kept in
//! `tests/golden/`. A change in rendering shows up as a diff in review.
//! To accept a change: `INGOT_BLESS=1 cargo test golden`, then read the diff.
//! A gzipped document (too large for Nova raw) is compared decompressed.

use crate::common::{repo_root, Test};
use std::fs;
use std::path::Path;

const FILES: [&str; 3] = ["bake.user-data", "boot.user-data", "manifest.json"];

fn compare(rendered: &Path, golden: &Path) {
    let bless = std::env::var_os("INGOT_BLESS").is_some();
    for f in FILES {
        // Golden files are kept as text, so that a review reads the diff.
        let got = gunzip(fs::read(rendered.join(f)).unwrap());
        let path = golden.join(f);
        if bless {
            fs::create_dir_all(golden).unwrap();
            fs::write(&path, &got).unwrap();
            continue;
        }
        let want = fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `INGOT_BLESS=1 cargo test golden` to create it",
                path.display()
            )
        });
        if got != want {
            let got = String::from_utf8_lossy(&got);
            let want = String::from_utf8_lossy(&want);
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .map(|i| i + 1)
                .unwrap_or(got.lines().count().min(want.lines().count()) + 1);
            panic!(
                "{} differs from the rendering, first at line {line}:\n  golden:   {:?}\n  rendered: {:?}\n\
                 If the change is intended: INGOT_BLESS=1 cargo test golden",
                path.display(),
                want.lines().nth(line - 1).unwrap_or("<end>"),
                got.lines().nth(line - 1).unwrap_or("<end>"),
            );
        }
    }
}

fn gunzip(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return bytes;
    }
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

#[test]
fn fixture_tree() {
    let t = Test::fixture();
    t.run_args(&[
        "render",
        "images/web.yaml",
        "--out",
        "out",
        "--set",
        "admin_keys=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden golden@example",
    ])
    .success();
    compare(
        &t.path().join("out"),
        &repo_root().join("tests/golden/fixture"),
    );
}

/// Every image of the repository, with its own parameters and no secrets.
#[test]
fn every_image() {
    let root = repo_root();
    let mut images: Vec<_> = fs::read_dir(root.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    images.sort();
    assert!(!images.is_empty());
    for image in images {
        let name = image.file_stem().unwrap().to_string_lossy().to_string();
        let out = tempfile::tempdir().unwrap();
        let r = crate::common::ingot()
            .current_dir(&root)
            .args(["render", &format!("images/{name}.yaml"), "--out"])
            .arg(out.path())
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        compare(out.path(), &root.join("tests/golden/images").join(&name));
    }
}
