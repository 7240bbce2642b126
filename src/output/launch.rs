//! How `launch`, `launch --delete` and the deploy part of `gc` read in a
//! terminal.

use crate::build::openstack::gc::Action;
use crate::deploy::gc::Report;
use crate::deploy::launch::{Deleted, Launched};
use std::fmt::Write;

pub fn launched_text(l: &Launched) -> String {
    let mut s = format!(
        "launched {} (server {}): release {} of {} ({}) passed its boot checks ({:.1} s of control plane, {:.0} s of boot)",
        l.name,
        l.server,
        l.version,
        l.image,
        crate::manifest::short_digest(&l.digest),
        l.seconds,
        l.boot_seconds
    );
    let _ = write!(
        s,
        "\naddresses: {}",
        if l.addresses.is_empty() {
            "none yet (openstack server show ".to_string() + &l.server + ")"
        } else {
            l.addresses.join(", ")
        }
    );
    let _ = write!(s, "\nsecurity groups: {}", l.security_groups.join(", "));
    let _ = write!(
        s,
        "\ndelete it when done: {} (it belongs to no deployment: `ingot destroy` does not see it)",
        l.delete
    );
    s
}

pub fn deleted_text(d: &Deleted) -> String {
    format!(
        "deleted {} (server{} {})",
        d.name,
        if d.servers.len() == 1 { "" } else { "s" },
        d.servers.join(", ")
    )
}

pub fn gc_text(r: &Report) -> String {
    if r.items.is_empty() {
        return "gc: nothing left by killed deploys or launches".into();
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
            "{what}: server {} {} ({} {}, run {}, {})",
            i.id, i.name, i.made_by, i.owner, i.run, i.role
        );
    }
    s.trim_end().to_string()
}
