//! What a command prints: text for people by default, JSON with `--json`.

use crate::compose::{Composition, Origin};
use crate::error::Error;
use crate::model::{Exposure, LayerSource, ParamType};
use crate::render::Rendered;
use serde_json::{json, Value};
use std::fmt::Write;
use std::path::PathBuf;

mod deploy;
mod dns;
mod launch;
mod release;
pub mod report;

pub enum Output {
    Layers(Vec<LayerSource>),
    Base(crate::base::BaseImage),
    Built(crate::build::Built),
    Verified(crate::build::VerifyReport),
    Checked {
        comp: Composition,
        rendered: Rendered,
    },
    Rendered {
        comp: Composition,
        rendered: Rendered,
        out: PathBuf,
    },
    Published(crate::release::publish::Published),
    BuiltAndPublished {
        artifact: crate::build::Built,
        published: crate::release::publish::Published,
    },
    Releases {
        image: String,
        releases: Vec<crate::release::Release>,
    },
    Promoted(crate::release::promote::Promotion),
    Pruned {
        image: String,
        plan: Vec<crate::release::prune::Decision>,
        dry_run: bool,
        deleted: Vec<String>,
    },
    BuiltMany(Vec<crate::build::Built>),
    BuiltAndPublishedMany(Vec<(crate::build::Built, crate::release::publish::Published)>),
    /// Each image of a cloud build, in the order given.
    CloudBuilt {
        results: Vec<(
            String,
            Result<crate::build::openstack::Released, crate::build::BuildError>,
        )>,
        /// Requests sent to the cloud's services, and Keystone logins.
        api_requests: u32,
        authentications: u32,
    },
    /// What builds left, and what killed deploys and launches left.
    Gc(
        crate::build::openstack::gc::Report,
        crate::deploy::gc::Report,
    ),
    Deployed(crate::deploy::flow::Outcome),
    DeployStatus(crate::deploy::status::Status),
    Destroyed(crate::deploy::status::Destroyed),
    Launched(crate::deploy::launch::Launched),
    LaunchDeleted(crate::deploy::launch::Deleted),
    /// A generated document (a completion script, a man page), as is.
    Document(String),
    /// The man pages written by `ingot man --out`.
    ManPages(Vec<PathBuf>),
}

impl Output {
    /// The exit code: a command can succeed for some items and fail for
    /// others (parallel builds, gc); the worst wins.
    pub fn code(&self) -> i32 {
        match self {
            Output::CloudBuilt { results, .. } => results
                .iter()
                .filter_map(|(_, r)| r.as_ref().err())
                .map(|e| e.code())
                .max_by_key(|c| match *c {
                    crate::error::EXIT_CANCELLED => 3,
                    crate::error::EXIT_FAILURE => 2,
                    _ => 1,
                })
                .unwrap_or(0),
            Output::Gc(r, d) if r.failed() + d.failed() > 0 => crate::error::EXIT_FAILURE,
            // CI gates on the exit code: a failed verify must not read as a pass.
            Output::Verified(r) if !r.ok => crate::error::EXIT_FAILURE,
            _ => 0,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Output::BuiltMany(all) => all.iter().map(built_line).collect::<Vec<_>>().join("\n"),
            Output::BuiltAndPublishedMany(all) => all
                .iter()
                .map(|(a, p)| format!("{}\n{}", built_line(a), release::published_text(p)))
                .collect::<Vec<_>>()
                .join("\n"),
            Output::CloudBuilt { results, .. } => release::cloud_built_text(results),
            Output::Gc(r, d) => format!("{}\n{}", release::gc_text(r), launch::gc_text(d)),
            Output::Launched(l) => launch::launched_text(l),
            Output::LaunchDeleted(d) => launch::deleted_text(d),
            Output::Deployed(o) => deploy::outcome_text(o),
            Output::DeployStatus(st) => deploy::status_text(st),
            Output::Destroyed(d) => deploy::destroyed_text(d),
            Output::Layers(layers) => layers_text(layers),
            // main adds the last newline.
            Output::Document(d) => d.trim_end_matches('\n').to_string(),
            Output::ManPages(files) => files
                .iter()
                .map(|f| format!("wrote {}", f.display()))
                .collect::<Vec<_>>()
                .join("\n"),
            Output::Base(b) => {
                format!("{} (sha256 {}, {})", b.disk().display(), b.sha256, b.source)
            }
            Output::Built(a) => built_line(a),
            Output::Verified(r) => verify_text(r),
            Output::Checked { comp, rendered } => {
                format!("ok: {}", summary(comp, rendered))
            }
            Output::Rendered {
                comp,
                rendered,
                out,
            } => format!(
                "rendered into {}: {}",
                out.display(),
                summary(comp, rendered)
            ),
            Output::Published(p) => release::published_text(p),
            Output::BuiltAndPublished {
                artifact,
                published,
            } => format!(
                "{}: {}\n{}",
                if artifact.built {
                    "built"
                } else {
                    "already built"
                },
                artifact.artifact.dir.display(),
                release::published_text(published)
            ),
            Output::Releases { image, releases } => release::releases_text(image, releases),
            Output::Promoted(p) => release::promoted_text(p),
            Output::Pruned {
                image,
                plan,
                dry_run,
                deleted,
            } => release::pruned_text(image, plan, *dry_run, deleted),
        }
    }

    pub fn json(&self) -> Value {
        match self {
            Output::BuiltMany(all) => json!({
                "ok": true,
                "builds": all.iter().map(|a| json!({"built": a.built, "artifact": a.artifact.dir, "manifest": a.artifact.manifest})).collect::<Vec<_>>(),
            }),
            Output::BuiltAndPublishedMany(all) => json!({
                "ok": true,
                "builds": all.iter().map(|(a, p)| json!({"built": a.built, "artifact": a.artifact.dir, "manifest": a.artifact.manifest, "published": release::published_json(p)})).collect::<Vec<_>>(),
            }),
            Output::CloudBuilt {
                results,
                api_requests,
                authentications,
            } => json!({
                "ok": self.code() == 0,
                "api_requests": api_requests,
                "authentications": authentications,
                "builds": results.iter().map(|(name, r)| release::cloud_built_json(name, r)).collect::<Vec<_>>(),
            }),
            Output::Gc(r, d) => {
                json!({"ok": r.failed() + d.failed() == 0, "gc": r, "deploys": d})
            }
            Output::Launched(l) => json!({"ok": true, "launch": l}),
            Output::LaunchDeleted(d) => json!({"ok": true, "deleted": d}),
            Output::Deployed(o) => json!({"ok": true, "deploy": o}),
            Output::DeployStatus(st) => json!({"ok": true, "status": st}),
            Output::Destroyed(d) => json!({"ok": true, "destroyed": d}),
            Output::Layers(layers) => Value::Array(layers.iter().map(layer_json).collect()),
            Output::Document(d) => json!({"ok": true, "document": d}),
            Output::ManPages(files) => json!({"ok": true, "pages": files}),
            Output::Base(b) => json!({"ok": true, "base": b, "disk": b.disk()}),
            Output::Built(a) => {
                json!({"ok": true, "built": a.built, "artifact": a.artifact.dir, "manifest": a.artifact.manifest})
            }
            Output::Verified(r) => json!({"ok": r.ok, "report": r}),
            Output::Checked { rendered, .. } => json!({"ok": true, "manifest": rendered.manifest}),
            Output::Rendered { rendered, out, .. } => {
                json!({"ok": true, "out": out, "manifest": rendered.manifest})
            }
            Output::Published(p) => {
                json!({"ok": true, "published": release::published_json(p)})
            }
            Output::BuiltAndPublished {
                artifact,
                published,
            } => json!({
                "ok": true,
                "built": artifact.built,
                "artifact": artifact.artifact.dir,
                "manifest": artifact.artifact.manifest,
                "published": release::published_json(published),
            }),
            Output::Releases { image, releases } => {
                json!({"ok": true, "image": image, "releases": releases})
            }
            Output::Promoted(p) => json!({"ok": true, "promotion": p}),
            Output::Pruned {
                image,
                plan,
                dry_run,
                deleted,
            } => {
                json!({"ok": true, "image": image, "dry_run": dry_run, "plan": plan, "deleted": deleted})
            }
        }
    }
}

fn built_line(a: &crate::build::Built) -> String {
    format!(
        "{}: {}",
        if a.built { "built" } else { "already built" },
        a.artifact.dir.display()
    )
}

pub fn error_json(e: &Error) -> Value {
    json!({"ok": false, "error": {"kind": e.kind(), "code": e.code(), "message": e.to_string()}})
}

fn verify_text(r: &crate::build::VerifyReport) -> String {
    let mut s = format!(
        "{} {}: {} (booted in {:.0} s)\n",
        r.image,
        r.version,
        if r.ok { "verified" } else { "FAILED" },
        r.boot_seconds
    );
    for c in &r.checks {
        let layer = c
            .layer
            .as_deref()
            .map(|l| format!("[{l}] "))
            .unwrap_or_default();
        let detail = if c.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", c.detail)
        };
        let _ = writeln!(
            s,
            "  {} {layer}{}{detail}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name
        );
    }
    if let Some(disk) = &r.data_disk {
        let _ = writeln!(
            s,
            "  data disk: {disk}; state setup: {}",
            r.state.as_deref().unwrap_or("(not read)")
        );
    }
    let _ = write!(s, "  serial log: {}", r.serial_log.display());
    s
}

fn summary(comp: &Composition, r: &Rendered) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {} ({})",
        comp.image.name, comp.image.version, comp.image.distro
    );
    let layers: Vec<String> = comp
        .layers
        .iter()
        .map(|l| format!("{} {}", l.name, l.version))
        .collect();
    let _ = writeln!(s, "  layers   {}", layers.join(", "));
    for doc in [&r.bake, &r.boot] {
        let _ = writeln!(
            s,
            "  {:<8} {} bytes{}",
            doc.phase.name(),
            doc.bytes.len(),
            if doc.gzipped {
                format!(" (gzip of {} bytes)", doc.text.len())
            } else {
                String::new()
            }
        );
    }
    let ports = |e: Exposure| -> String {
        let list: Vec<String> = comp
            .ports
            .iter()
            .filter(|p| p.exposure == e)
            .map(|p| format!("{}/{}", p.port, p.protocol.name()))
            .collect();
        if list.is_empty() {
            "-".into()
        } else {
            list.join(" ")
        }
    };
    let _ = writeln!(s, "  public   {}", ports(Exposure::Public));
    let _ = writeln!(s, "  private  {}", ports(Exposure::Private));
    let _ = writeln!(s, "  local    {}", ports(Exposure::Local));
    let secrets: Vec<String> = comp
        .params
        .iter()
        .filter(|(_, p)| p.kind == ParamType::Secret)
        .map(|(n, p)| {
            let state = if p.origin == Origin::Secret {
                "given"
            } else {
                "not given"
            };
            format!("{n} ({state})")
        })
        .collect();
    if !secrets.is_empty() {
        let _ = writeln!(s, "  secrets  {}", secrets.join(", "));
    }
    let _ = write!(s, "  digest   {}", r.manifest.input_digest);
    s
}

fn layers_text(layers: &[LayerSource]) -> String {
    let mut s = String::new();
    for (i, src) in layers.iter().enumerate() {
        let l = &src.layer;
        if i > 0 {
            s.push('\n');
        }
        let _ = writeln!(s, "{} {} — {}", l.name, l.version, l.description.trim());
        let distros: Vec<&str> = l.distros.iter().map(|d| d.name()).collect();
        let _ = writeln!(s, "  distros   {}", distros.join(", "));
        if !l.requires.is_empty() {
            let _ = writeln!(s, "  requires  {}", l.requires.join(", "));
        }
        if !l.conflicts.is_empty() {
            let _ = writeln!(s, "  conflicts {}", l.conflicts.join(", "));
        }
        if !l.params.is_empty() {
            let _ = writeln!(s, "  params");
            let width = l.params.keys().map(String::len).max().unwrap_or(0);
            let defaults: Vec<String> = l
                .params
                .values()
                .map(|p| match &p.default {
                    Some(d) => format!("default {d}"),
                    None if p.required => "required".into(),
                    None => "optional".into(),
                })
                .collect();
            let dwidth = defaults.iter().map(String::len).max().unwrap_or(0);
            for ((name, p), default) in l.params.iter().zip(&defaults) {
                let line = format!(
                    "    {name:<width$}  {:<6}  {default:<dwidth$}  {}",
                    p.kind.to_string(),
                    p.description
                );
                let _ = writeln!(s, "{}", line.trim_end());
            }
        }
        if !l.state.is_empty() {
            let _ = writeln!(s, "  state");
            let width = l.state.iter().map(|p| p.path.len()).max().unwrap_or(0);
            for p in &l.state {
                let _ = writeln!(
                    s,
                    "    {:<width$}  {}:{} {}",
                    p.path,
                    p.owner,
                    p.group,
                    p.mode.octal()
                );
            }
        }
    }
    s.trim_end().to_string()
}

fn layer_json(src: &LayerSource) -> Value {
    let l = &src.layer;
    let params: serde_json::Map<String, Value> = l
        .params
        .iter()
        .map(|(n, p)| {
            (
                n.clone(),
                json!({"type": p.kind, "default": p.default, "required": p.required, "description": p.description}),
            )
        })
        .collect();
    json!({
        "name": l.name,
        "version": l.version,
        "description": l.description,
        "distros": l.distros,
        "requires": l.requires,
        "conflicts": l.conflicts,
        "params": params,
        "state": l.state,
    })
}

#[cfg(test)]
mod tests {
    use super::Output;
    use crate::build::VerifyReport;

    fn report(ok: bool) -> Output {
        Output::Verified(VerifyReport {
            image: "web-debian".into(),
            version: "1.0.0".into(),
            ok,
            checks: vec![],
            serial_log: "verify.serial.log".into(),
            boot_seconds: 1.0,
            data_disk: Some("scratch".into()),
            state: Some("ok /dev/vdb formatted on this boot, 2 state paths bound".into()),
        })
    }

    #[test]
    fn the_verify_text_says_which_data_disk_and_what_the_setup_said() {
        let Output::Verified(r) = report(true) else {
            unreachable!()
        };
        let text = super::verify_text(&r);
        assert!(
            text.contains(
                "  data disk: scratch; state setup: ok /dev/vdb formatted on this boot, 2 state paths bound\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_failed_verify_exits_non_zero() {
        assert_eq!(report(true).code(), 0);
        assert_eq!(report(false).code(), crate::error::EXIT_FAILURE);
    }
}
