//! Text and JSON for the release commands.

use crate::release::promote::Promotion;
use crate::release::prune::Decision;
use crate::release::publish::Published;
use crate::release::Release;
use serde_json::{json, Value};
use std::fmt::Write;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

pub fn published_text(p: &Published) -> String {
    let i = &p.image;
    let name = i.name.as_deref().unwrap_or("");
    if p.reused {
        return format!("already published: {name} is image {} ({})", i.id, i.status);
    }
    let mut s = format!(
        "published {name} as image {}: {} in {:.1} s ({:.0} MiB/s), sha512 matches Glance's",
        i.id,
        mib(p.bytes),
        p.upload_seconds,
        p.mib_per_second()
    );
    if p.attempts > 1 {
        let _ = write!(s, ", after {} attempts", p.attempts);
    }
    for r in &p.removed {
        let _ = write!(s, "\nremoved {r}, left by an interrupted publish");
    }
    s
}

pub fn published_json(p: &Published) -> Value {
    json!({
        "reused": p.reused,
        "image": p.image,
        "attempts": p.attempts,
        "bytes": p.bytes,
        "upload_seconds": (p.upload_seconds * 100.0).round() / 100.0,
        "removed": p.removed,
    })
}

pub fn releases_text(image: &str, releases: &[Release]) -> String {
    if releases.is_empty() {
        return format!("{image}: no release in this project");
    }
    let rows: Vec<[String; 8]> = releases
        .iter()
        .map(|r| {
            [
                r.version.clone(),
                r.short_digest().to_string(),
                r.created_at
                    .replace('T', " ")
                    .trim_end_matches('Z')
                    .to_string(),
                r.size.map(mib).unwrap_or_else(|| "-".into()),
                r.status.to_string(),
                if r.channels.is_empty() {
                    "-".into()
                } else {
                    r.channels.join(",")
                },
                match &r.servers {
                    None => "?".into(),
                    Some(s) if s.is_empty() => "-".into(),
                    Some(s) => s
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                },
                r.id.clone(),
            ]
        })
        .collect();
    let header = [
        "VERSION", "DIGEST", "CREATED", "SIZE", "STATUS", "CHANNELS", "SERVERS", "ID",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in &rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    if releases.iter().any(|r| r.servers.is_none()) {
        out.push_str("servers: unknown (the cloud's catalog has no compute service)\n");
    }
    out.trim_end().to_string()
}

pub fn promoted_text(p: &Promotion) -> String {
    if !p.changed {
        return format!(
            "channel {} of {} already points to {}",
            p.channel,
            p.image,
            p.to.label()
        );
    }
    let from = if p.from.is_empty() {
        "nothing (new channel)".to_string()
    } else {
        p.from
            .iter()
            .map(Release::label)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "channel {} of {}: {} -> {} (image {}), read back",
        p.channel,
        p.image,
        from,
        p.to.label(),
        p.to.id
    )
}

pub fn pruned_text(image: &str, plan: &[Decision], dry_run: bool, deleted: &[String]) -> String {
    let mut s = String::new();
    if plan.is_empty() {
        return format!("{image}: no release in this project, nothing to prune");
    }
    for d in plan {
        let verb = match (d.delete, dry_run) {
            (false, _) => "keep  ",
            (true, true) => "would delete",
            (true, false) if deleted.contains(&d.release.id) => "deleted",
            (true, false) => "FAILED",
        };
        let _ = writeln!(
            s,
            "{verb:<12} {} {}  {}",
            d.release.label(),
            d.release.id,
            d.reason
        );
    }
    let n = plan.iter().filter(|d| d.delete).count();
    let _ = write!(
        s,
        "{image}: {} {n} of {} releases",
        if dry_run {
            "dry run, would delete"
        } else {
            "deleted"
        },
        plan.len()
    );
    s
}

pub fn cloud_built_text(
    results: &[(
        String,
        Result<crate::build::openstack::Released, crate::build::BuildError>,
    )],
) -> String {
    let mut s = String::new();
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    for (name, r) in results {
        match r {
            Ok(rel) => {
                let image = rel.image.name.as_deref().unwrap_or("");
                if rel.reused {
                    let _ = writeln!(
                        s,
                        "already released: {name}: {image} is image {}",
                        rel.image.id
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "released: {name}: {image} is image {} ({}); cleanup: {}",
                        rel.image.id,
                        mib(rel.image.size.unwrap_or(0)),
                        rel.cleanup
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(s, "FAILED: {name}: {e}");
            }
        }
    }
    let _ = write!(
        s,
        "{} of {} build(s) succeeded",
        results.len() - failed,
        results.len()
    );
    s
}

pub fn cloud_built_json(
    name: &str,
    r: &Result<crate::build::openstack::Released, crate::build::BuildError>,
) -> Value {
    match r {
        Ok(rel) => json!({
            "image": name,
            "ok": true,
            "reused": rel.reused,
            "release": rel.image,
            "manifest": rel.manifest,
            "cleanup": cleanup_json(&rel.cleanup),
        }),
        Err(e) => json!({
            "image": name,
            "ok": false,
            "error": {"code": e.code(), "message": e.to_string()},
            "cleanup": match e {
                crate::build::BuildError::CloudBuild { cleanup, .. }
                | crate::build::BuildError::CloudCancelled { cleanup, .. } => cleanup_json(cleanup),
                _ => Value::Null,
            },
        }),
    }
}

fn cleanup_json(c: &crate::build::openstack::Cleanup) -> Value {
    json!({
        "deleted": c.deleted.iter().map(|(k, id)| json!({"kind": k.name(), "id": id})).collect::<Vec<_>>(),
        "left": c.left.iter().map(|(k, id, why)| json!({"kind": k.name(), "id": id, "why": why})).collect::<Vec<_>>(),
    })
}

pub fn gc_text(r: &crate::build::openstack::gc::Report) -> String {
    use crate::build::openstack::gc::Action;
    if r.items.is_empty() {
        return "gc: nothing left by ingot builds".into();
    }
    let mut s = String::new();
    for i in &r.items {
        let what = match &i.action {
            Action::Deleted => "deleted".to_string(),
            Action::WouldDelete => "would delete".to_string(),
            Action::Kept(why) => format!("kept ({why})"),
            Action::Failed(why) => format!("FAILED ({why})"),
        };
        let _ = writeln!(
            s,
            "{what}: {} {} {} (build {}, found by the {})",
            i.kind, i.id, i.name, i.build, i.found_by
        );
    }
    s.trim_end().to_string()
}
