//! Whole-process rendering benchmark: `cargo bench --bench render` (or
//! `just bench`). Runs the release `ingot` binary as a user would, many
//! times, and prints median and spread:
//!
//! - `render images/jitsi-meet.yaml` and `images/web-debian.yaml` (the
//!   repository's own images);
//! - generated stress trees of 50, 100 and 200 layers with 10 files each
//!   (2,000 files at 200 layers), to show that cost grows linearly.
//!
//! Not a test: nothing here fails on a slow machine. Figures go to
//! docs/benchmarks.md with the machine they were measured on.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let bin = env!("CARGO_BIN_EXE_ingot");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    println!("| case | layers | files | median | min | max | runs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for image in ["jitsi-meet", "web-debian"] {
        let file = root.join("images").join(format!("{image}.yaml"));
        if !file.exists() {
            continue;
        }
        let out = tempfile::tempdir().unwrap();
        let stats = time(runs, || {
            let s = Command::new(bin)
                .current_dir(root)
                .args(["render", &format!("images/{image}.yaml"), "--out"])
                .arg(out.path())
                .output()
                .unwrap();
            assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
        });
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.path().join("manifest.json")).unwrap())
                .unwrap();
        let layers = manifest["layers"].as_array().map_or(0, Vec::len);
        row(&format!("render {image}"), layers, 0, &stats);
    }
    for layers in [50, 100, 200] {
        let tree = stress_tree(layers, 10);
        let out = tempfile::tempdir().unwrap();
        let stats = time(runs.min(15), || {
            let s = Command::new(bin)
                .current_dir(tree.path())
                .args(["render", "images/stress.yaml", "--out"])
                .arg(out.path())
                .output()
                .unwrap();
            assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
        });
        row("render stress", layers, layers * 10, &stats);
    }
}

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
    runs: usize,
}

fn time(runs: usize, mut f: impl FnMut()) -> Stats {
    f(); // warm the page cache
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    Stats {
        median: samples[runs / 2],
        min: samples[0],
        max: samples[runs - 1],
        runs,
    }
}

fn row(case: &str, layers: usize, files: usize, s: &Stats) {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {case} | {layers} | {files} | {} | {} | {} | {} |",
        ms(s.median),
        ms(s.min),
        ms(s.max),
        s.runs
    );
}

/// `layers` layers in a chain of requirements (each requires the previous
/// one, so ordering does real work), each with `files` templated files, a
/// parameter, a port, packages, commands and a check.
fn stress_tree(layers: usize, files: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for i in 0..layers {
        let name = format!("l{i:03}");
        let mut y = String::new();
        let _ = writeln!(
            y,
            "schema: 1\nname: {name}\nversion: 1.0.{i}\ndescription: stress layer {i}"
        );
        if i > 0 {
            let _ = writeln!(y, "requires: [l{:03}]", i - 1);
        }
        let _ = writeln!(
            y,
            "distros: [debian-12]\nparams:\n  p{i}: {{type: port, default: {}}}",
            10000 + i
        );
        let _ = writeln!(y, "packages:\n  all: [pkg-{i}, common]\nports:\n  - {{port: \"{{{{ p{i} }}}}\", protocol: tcp, exposure: local, service: svc{i}}}");
        y.push_str("files:\n");
        for f in 0..files {
            let _ = writeln!(
                y,
                "  - path: /etc/stress/{name}/f{f}.conf\n    template: f.conf.tera"
            );
        }
        let _ = writeln!(
            y,
            "commands:\n  bake: [\"echo {name} {{{{ p{i} }}}}\"]\n  boot: [\"echo boot {name}\"]"
        );
        let _ = writeln!(
            y,
            "checks:\n  - name: c\n    tcp: \"127.0.0.1:{{{{ p{i} }}}}\""
        );
        let ldir = dir.path().join("layers").join(&name);
        std::fs::create_dir_all(&ldir).unwrap();
        std::fs::write(ldir.join("layer.yaml"), y).unwrap();
        // Plain variable uses only: a loop over `layers` in every file would
        // make the benchmark itself quadratic.
        std::fs::write(
            ldir.join("f.conf.tera"),
            format!(
                "# layer {name} of image {{{{ image.name }}}}\nlisten = 127.0.0.1:{{{{ p{i} }}}}\n{{% if distro == \"debian-12\" %}}family = {{{{ distro_family }}}}\n{{% endif %}}"
            ),
        )
        .unwrap();
        names.push(name);
    }
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    // Listed in reverse so that ordering has to move every layer.
    names.reverse();
    std::fs::write(
        dir.path().join("images/stress.yaml"),
        format!(
            "schema: 1\nname: stress\nversion: '1'\nbase: {{distro: debian-12, build: debian-archive}}\nlayers: [{}]\n",
            names.join(", ")
        ),
    )
    .unwrap();
    dir
}
