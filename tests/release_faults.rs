//! `ingot publish` against the playground's real Glance, with faults a
//! real server cannot produce on demand: uploads cut mid-stream, a Ctrl-C
//! during the create request or the upload, a Glance that does not answer. `ingot` reaches Glance
//! through a [`FaultProxy`] (an `image_endpoint_override` in a copy of the
//! playground's clouds.yaml); Keystone stays direct. Each test checks,
//! with the openstack CLI rather than ingot, what was left in Glance.

use crate::common::cloud::{artifact, data, sha512_hex, unique, Playground};
use crate::common::fault_proxy::{glance_address, FaultProxy};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLOUD: &str = "ingot-playground";
const MIB: usize = 1024 * 1024;

/// A copy of the playground's clouds.yaml whose `ingot-playground` cloud
/// sends Glance requests to `image_url` (ingot honours
/// `<service>_endpoint_override`, see src/cloud/config.rs).
fn clouds_via(pg: &Playground, dir: &Path, image_url: &str) -> PathBuf {
    let text = std::fs::read_to_string(&pg.clouds).expect("playground clouds.yaml");
    let all: serde_yaml::Value = serde_yaml::from_str(&text).expect("clouds.yaml is YAML");
    let mut cloud = all["clouds"][CLOUD].clone();
    assert!(
        cloud.is_mapping(),
        "no cloud {CLOUD} in {}",
        pg.clouds.display()
    );
    cloud.as_mapping_mut().unwrap().insert(
        "image_endpoint_override".into(),
        image_url.to_string().into(),
    );
    let mut clouds = serde_yaml::Mapping::new();
    clouds.insert(CLOUD.into(), cloud);
    let mut top = serde_yaml::Mapping::new();
    top.insert("clouds".into(), clouds.into());
    let path = dir.join("clouds.yaml");
    std::fs::write(&path, serde_yaml::to_string(&top).unwrap()).unwrap();
    path
}

/// `ingot publish ARTIFACT --os-cloud ingot-playground` with `clouds`.
fn publish(pg: &Playground, clouds: &Path, artifact: &Path, extra: &[&str]) -> Command {
    let mut c = pg.ingot();
    c.env("OS_CLIENT_CONFIG_FILE", clouds)
        .arg("publish")
        .arg(artifact)
        .args(["--os-cloud", CLOUD])
        .args(extra);
    c
}

/// The artifact's `input_digest`, which publish stores as `ingot_digest`.
fn digest_of(artifact: &Path) -> String {
    let m: Value =
        serde_json::from_slice(&std::fs::read(artifact.join("manifest.json")).unwrap()).unwrap();
    m["input_digest"].as_str().unwrap().to_string()
}

/// Every image with this digest, whatever its status: Glance lists
/// `queued`, `saving` and `killed` images to their owner too (checked:
/// a record created and never uploaded to is listed `queued`); only
/// deleted ones are gone.
fn images_with(pg: &Playground, digest: &str) -> Vec<Value> {
    let filter = format!("ingot_digest={digest}");
    let v = pg.openstack(CLOUD, &["image", "list", "--property", &filter, "--long"]);
    v.as_array().expect("a JSON list").clone()
}

/// Deletes every image of a digest when the test ends, passed or not.
/// Never panics: a panic while a failed test unwinds would abort the
/// whole test binary.
struct Leftovers<'a> {
    pg: &'a Playground,
    digest: String,
}

impl Drop for Leftovers<'_> {
    fn drop(&mut self) {
        let openstack = |args: &[&str]| {
            Command::new("openstack")
                .env("OS_CLIENT_CONFIG_FILE", &self.pg.clouds)
                .args(["--os-cloud", CLOUD])
                .args(args)
                .output()
                .ok()
        };
        let filter = format!("ingot_digest={}", self.digest);
        let Some(out) = openstack(&["image", "list", "--property", &filter, "-f", "json"]) else {
            return;
        };
        let images: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let ids: Vec<&str> = images.iter().filter_map(|i| i["ID"].as_str()).collect();
        if !ids.is_empty() {
            let mut args = vec!["image", "delete"];
            args.extend(ids);
            openstack(&args);
        }
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What follows `before` and precedes `after` in a progress line of
/// ingot's (`[publish 00:00] image ID created, status queued`).
fn progress_field(stderr: &str, before: &str, after: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            l.split_once("] ")?
                .1
                .strip_prefix(before)?
                .strip_suffix(after)
        })
        .unwrap_or_else(|| panic!("no `{before}…{after}` line in:\n{stderr}"))
        .to_string()
}

/// The id of the record this run created.
fn created_id(stderr: &str) -> String {
    progress_field(stderr, "image ", " created, status queued")
}

/// The Glance name of the record this run created.
fn record_name(stderr: &str) -> String {
    let line = progress_field(stderr, "creating image ", " properties)");
    line.rsplit_once(" (").unwrap().0.to_string()
}

/// The number of stderr lines containing `part`.
fn count(stderr: &str, part: &str) -> usize {
    stderr.lines().filter(|l| l.contains(part)).count()
}

fn field(image: &Value, key: &str) -> String {
    image[key].as_str().unwrap_or_default().to_string()
}

/// Runs `cmd` until one of its progress lines starts with `cue`, then
/// sends it SIGINT, what Ctrl-C sends (`kill`: libc is no dependency),
/// calls `after`, and waits for it to end. Its exit code (`None`: killed
/// by a signal) and all of its stderr.
fn interrupt(mut cmd: Command, cue: &str, after: impl FnOnce()) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Lines arrive on a thread, so that waiting for one has a deadline.
    let (tx, lines) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match next_line(&lines, &mut seen, deadline) {
            Some(l) if l.split_once("] ").is_some_and(|(_, m)| m.starts_with(cue)) => break,
            Some(_) => {}
            None => {
                let _ = child.kill();
                panic!("no `{cue}` line within 20 s:\n{seen}");
            }
        }
    }
    let sigint = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sigint.success(), "kill -INT failed");
    after();
    // What is left to do is one DELETE: ingot ends well within this.
    let deadline = Instant::now() + Duration::from_secs(20);
    while next_line(&lines, &mut seen, deadline).is_some() {}
    if Instant::now() >= deadline {
        let _ = child.kill();
        panic!("still running 20 s after Ctrl-C:\n{seen}");
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    (status.code(), seen)
}

/// The next line, also added to `seen`; `None` at the end or the deadline.
fn next_line(
    lines: &mpsc::Receiver<String>,
    seen: &mut String,
    deadline: Instant,
) -> Option<String> {
    let wait = deadline.saturating_duration_since(Instant::now());
    let line = lines.recv_timeout(wait).ok()?;
    seen.push_str(&line);
    seen.push('\n');
    Some(line)
}

#[test]
fn a_cut_upload_is_retried_and_ends_verified() {
    let Some(pg) = Playground::get() else { return };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(8 * MIB);
    let art = artifact(tmp.path(), &unique("cut-once"), "1.0.0", &bytes);
    let digest = digest_of(&art);
    let _leftovers = Leftovers {
        pg: &pg,
        digest: digest.clone(),
    };
    let proxy = FaultProxy::start(glance_address(&pg.dir));
    // 256 KiB: far more than any API request, a small part of the upload.
    proxy.cut_after(256 * 1024, 1);
    let clouds = clouds_via(&pg, tmp.path(), &proxy.url());

    let out = publish(&pg, &clouds, &art, &[]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(proxy.cuts(), 1, "the proxy cut no upload:\n{stderr}");
    let id = created_id(&stderr);
    let put = format!("{}/v2/images/{id}/file", proxy.url());
    assert_eq!(
        count(&stderr, &format!("] upload failed: glance: PUT {put}: ")),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("; attempt 2 of 5\n"),
        "no second attempt:\n{stderr}"
    );
    // What Glance does to a cut upload (observed on the playground's
    // Glance): webob raises `DisconnectionError: The client disconnected
    // while sending the body`, the PUT ends in a 500, and the record goes
    // back to `queued` (image_data.py `_restore`), not `killed`. So the
    // retry sends the data again to the same record: no "Glance gave up"
    // line, no second record.
    assert!(!stderr.contains("Glance gave up"), "{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "published {} as image {id}: 8.0 MiB in ",
            record_name(&stderr)
        )) && stdout.ends_with(", sha512 matches Glance's, after 2 attempts\n"),
        "{stdout}"
    );

    // Checked with the openstack CLI, not ingot: one image with this
    // digest, active, holding exactly the artifact's bytes.
    let images = images_with(&pg, &digest);
    assert_eq!(images.len(), 1, "{images:#?}");
    assert_eq!(
        (field(&images[0], "ID"), field(&images[0], "Status")),
        (id.clone(), "active".to_string())
    );
    let image = pg.openstack(CLOUD, &["image", "show", &id]);
    // The CLI puts Glance's extra fields under `properties`.
    assert_eq!(image["properties"]["os_hash_algo"], "sha512");
    assert_eq!(
        field(&image["properties"], "os_hash_value"),
        sha512_hex(&bytes)
    );
    assert_eq!(image["size"], bytes.len());
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn an_upload_cut_every_time_leaves_no_queued_image() {
    let Some(pg) = Playground::get() else { return };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let art = artifact(tmp.path(), &unique("cut-always"), "1.0.0", &data(4 * MIB));
    let digest = digest_of(&art);
    let _leftovers = Leftovers {
        pg: &pg,
        digest: digest.clone(),
    };
    let proxy = FaultProxy::start(glance_address(&pg.dir));
    proxy.cut_after(256 * 1024, u32::MAX);
    let clouds = clouds_via(&pg, tmp.path(), &proxy.url());

    let out = publish(&pg, &clouds, &art, &["--attempts", "3"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(proxy.cuts(), 3, "{stderr}");
    let id = created_id(&stderr);
    // The record survived each cut (Glance puts it back to `queued`), so
    // all three attempts went to it, and it is deleted once, at the end.
    assert!(!stderr.contains("Glance gave up"), "{stderr}");
    assert_eq!(
        count(&stderr, "] deleting the unfinished image "),
        1,
        "{stderr}"
    );
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    // Between the two: the transport's own words for the cut, which
    // depend on where in the request it fell.
    let head = format!(
        "error: upload of {} failed after 3 attempt(s): glance: PUT {}/v2/images/{id}/file: ",
        record_name(&stderr),
        proxy.url()
    );
    let tail = format!("; the unfinished image {id} was deleted");
    assert!(
        error.starts_with(&head) && error.ends_with(&tail),
        "{error}\nexpected {head}…{tail}"
    );

    let images = images_with(&pg, &digest);
    assert!(images.is_empty(), "left in Glance: {images:#?}");
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn ctrl_c_during_an_upload_deletes_the_record() {
    let Some(pg) = Playground::get() else { return };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let art = artifact(tmp.path(), &unique("ctrl-c"), "1.0.0", &data(8 * MIB));
    let digest = digest_of(&art);
    let _leftovers = Leftovers {
        pg: &pg,
        digest: digest.clone(),
    };
    let proxy = FaultProxy::start(glance_address(&pg.dir));
    // 8 MiB at 1 MiB/s: the upload is in flight for about 8 s, while the
    // first progress line comes after 2 s.
    proxy.throttle(MIB as u64);
    let clouds = clouds_via(&pg, tmp.path(), &proxy.url());

    let (code, stderr) = interrupt(publish(&pg, &clouds, &art, &[]), "uploading ", || {});
    assert_eq!(code, Some(130), "{stderr}");
    let id = created_id(&stderr);
    assert_eq!(
        count(&stderr, "] deleting the unfinished image "),
        1,
        "{stderr}"
    );
    assert!(
        stderr.ends_with(&format!(
            "error: cancelled (Ctrl-C): the unfinished image {id} was deleted\n"
        )),
        "{stderr}"
    );
    // Closing the proxy ends the PUT that Glance was still receiving, so
    // that what Glance does with it happens before the check.
    drop(proxy);
    let images = images_with(&pg, &digest);
    assert!(images.is_empty(), "left in Glance: {images:#?}");
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn ctrl_c_while_the_record_is_created_deletes_it() {
    let Some(pg) = Playground::get() else { return };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let art = artifact(
        tmp.path(),
        &unique("ctrl-c-create"),
        "1.0.0",
        &data(64 * 1024),
    );
    let digest = digest_of(&art);
    let _leftovers = Leftovers {
        pg: &pg,
        digest: digest.clone(),
    };
    let proxy = FaultProxy::start(glance_address(&pg.dir));
    // At 500 bytes/s the create request (token, 22 properties: some 2 KB)
    // is in flight for seconds after ingot says `creating image`; the
    // Ctrl-C falls there. Glance still gets the whole request once the
    // limit is lifted, and creates the record.
    proxy.throttle(500);
    let clouds = clouds_via(&pg, tmp.path(), &proxy.url());

    let (code, stderr) = interrupt(publish(&pg, &clouds, &art, &[]), "creating image ", || {
        proxy.throttle(0)
    });
    // Before the fix in publish.rs (the Ctrl-C handler installed before
    // the create), the process died of the signal here (no exit code) and
    // the record was left `queued`, blocking the next publish of the
    // digest for 15 minutes.
    assert_eq!(code, Some(130), "{stderr}");
    let id = created_id(&stderr);
    assert_eq!(
        count(&stderr, "] deleting the unfinished image "),
        1,
        "{stderr}"
    );
    assert!(
        stderr.ends_with(&format!(
            "error: cancelled (Ctrl-C): the unfinished image {id} was deleted\n"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("] uploading "), "{stderr}");
    let images = images_with(&pg, &digest);
    assert!(images.is_empty(), "left in Glance: {images:#?}");
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn a_dead_glance_gives_a_clear_error_and_no_record() {
    let Some(pg) = Playground::get() else { return };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let art = artifact(tmp.path(), &unique("dead"), "1.0.0", &data(64 * 1024));
    let digest = digest_of(&art);
    let _leftovers = Leftovers {
        pg: &pg,
        digest: digest.clone(),
    };
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let clouds = clouds_via(&pg, tmp.path(), &url);

    let out = publish(&pg, &clouds, &art, &[]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // ingot's part of the message names the service, the request and
    // Glance's URL; the rest is the connection's own error.
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    let head = format!(
        "error: glance: GET {url}/v2/images?ingot_digest={}&owner=",
        digest.replace(':', "%3A")
    );
    assert!(
        error.starts_with(&head) && error.contains("Connection refused"),
        "{error}\nexpected {head}…Connection refused…"
    );
    // It failed at the first request, the lookup by digest: no record.
    assert!(!stderr.contains("creating image"), "{stderr}");

    let images = images_with(&pg, &digest);
    assert!(images.is_empty(), "left in Glance: {images:#?}");
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}
