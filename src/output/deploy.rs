//! How deploys, statuses and destroys read in a terminal.

use crate::deploy::flow::Outcome;
use crate::deploy::status::{Destroyed, Status};

pub fn outcome_text(o: &Outcome) -> String {
    let mut out = match o.action {
        "unchanged" => format!(
            "{}: release {} already serves on {}; nothing changed",
            o.deployment, o.version, o.server_name
        ),
        "restarted" => format!(
            "{}: release {} serves again on {} (a stopped server started) in {:.1} s of control plane, {:.0} s of boot",
            o.deployment, o.version, o.server_name, o.seconds, o.boot_seconds
        ),
        _ => format!(
            "{}: release {} serves on {} in {:.1} s of control plane, {:.0} s of boot",
            o.deployment, o.version, o.server_name, o.seconds, o.boot_seconds
        ),
    };
    if let Some(a) = &o.address {
        out.push_str(&format!("\naddress: {a}"));
        if let Some(t) = o.serving_after_seconds {
            out.push_str(&format!(
                " (on the new server after {t:.1} s of control plane)"
            ));
        }
    }
    if let Some(p) = &o.previous {
        out.push_str(&format!(
            "\nprevious server {p}: stopped, kept for `ingot rollback`"
        ));
    }
    for note in &o.probed {
        out.push_str(&format!("\nprobe: {note}"));
    }
    for p in &o.pruned {
        out.push_str(&format!("\ndeleted old standby {p}"));
    }
    for c in &o.cleaned {
        out.push_str(&format!("\ncleaned up {c} (left by an interrupted run)"));
    }
    if let Some(d) = &o.dns {
        out.push_str(&super::dns::pointed_text(d));
    }
    out
}

pub fn status_text(s: &Status) -> String {
    let mut out = format!("deployment {} (image {})", s.deployment, s.image);
    match (&s.address, &s.serving) {
        (Some(a), Some(sv)) => out.push_str(&format!("\naddress {a} → {sv}")),
        (Some(a), None) => out.push_str(&format!("\naddress {a} → no server")),
        (None, Some(sv)) => out.push_str(&format!("\nserving: {sv}")),
        (None, None) => out.push_str("\nnothing serves"),
    }
    if s.servers.is_empty() {
        out.push_str("\nno servers");
    }
    for r in &s.servers {
        out.push_str(&format!(
            "\n{} {} {} {} {} [{}] {}{}",
            if r.serving { "*" } else { " " },
            r.name,
            r.version,
            crate::manifest::short_digest(&r.digest),
            r.state,
            r.role,
            r.health,
            if r.channels.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.channels.join(", "))
            }
        ));
    }
    if let Some(d) = &s.dns {
        out.push_str(&super::dns::view_text(d));
    }
    out
}

pub fn destroyed_text(d: &Destroyed) -> String {
    let mut out = format!(
        "{}: deleted {} server(s){}",
        d.deployment,
        d.servers.len(),
        match &d.security_group {
            Some(g) => format!(" and security group {g}"),
            None => String::new(),
        }
    );
    if let Some(a) = &d.address_released {
        out.push_str(&format!("; released address {a}"));
    }
    if let Some(a) = &d.address_kept {
        out.push_str(&format!(
            "; kept address {a} (--release-address releases it)"
        ));
    }
    if let Some(dns) = &d.dns {
        out.push_str(&super::dns::left_text(dns));
    }
    out
}
