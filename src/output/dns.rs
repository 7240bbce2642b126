//! How the deployment's DNS record reads in a terminal (`deploy`, `status`,
//! `destroy`).

use crate::deploy::dns::{DnsLeft, DnsView, Pointed};

/// After a deploy: one line per recordset, what was done to it.
pub fn pointed_text(p: &Pointed) -> String {
    p.lines().iter().map(|l| format!("\n{l}")).collect()
}

/// `status`: the records Designate holds, whether they hold the address,
/// what the system resolver says.
pub fn view_text(v: &DnsView) -> String {
    let mut out = format!(
        "\ndns {} (zone {}, ttl {})",
        v.name.as_deref().unwrap_or("(no name)"),
        v.zone,
        v.ttl
    );
    if let Some(p) = &v.problem {
        out.push_str(&format!("\n  problem: {p}"));
    } else if v.records.is_empty() {
        out.push_str("\n  no A or AAAA record in Designate (the next deploy creates it)");
    }
    for r in &v.records {
        out.push_str(&format!("\n  {r}"));
    }
    if v.problem.is_none() && !v.records.is_empty() && !v.in_sync {
        out.push_str(&format!(
            "\n  does not hold {} with ttl {}: the next deploy corrects it",
            if v.expected.is_empty() {
                "the deployment's address (nothing serves)".to_string()
            } else {
                v.expected.join(", ")
            },
            v.ttl
        ));
    }
    if let (Some(name), Some(r)) = (&v.name, &v.resolver) {
        out.push_str(&format!("\n  {name} {r} through the system resolver"));
    }
    out
}

/// `destroy`: what went, what stayed.
pub fn left_text(d: &DnsLeft) -> String {
    let mut out = String::new();
    if !d.deleted.is_empty() {
        out.push_str(&format!(
            "; deleted DNS record {} ({})",
            d.name,
            d.deleted.join("; ")
        ));
    }
    if !d.kept.is_empty() {
        out.push_str(&format!(
            "; DNS record {} ({}) stayed (--delete-dns deletes it)",
            d.name,
            d.kept.join("; ")
        ));
    }
    if d.deleted.is_empty() && d.kept.is_empty() {
        out.push_str(&format!("; no DNS record of {} to delete", d.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::dns::{DnsAction, DnsStatus, RecordType};
    use crate::deploy::dns::{RecordView, Resolution};

    #[test]
    fn status_says_what_designate_holds_and_what_the_resolver_says() {
        let mut v = DnsView {
            zone: "playground.test.".into(),
            name: Some("web.playground.test.".into()),
            records: vec![RecordView {
                record_type: RecordType::A,
                records: vec!["203.0.113.7".into()],
                ttl: Some(300),
                status: DnsStatus::Active,
                action: DnsAction::Nothing,
                ours: true,
            }],
            expected: vec!["203.0.113.7".into()],
            in_sync: true,
            ttl: 300,
            resolver: Some(Resolution::DoesNotResolve {
                why: "failed to lookup address information".into(),
            }),
            problem: None,
        };
        assert_eq!(
            view_text(&v),
            "\ndns web.playground.test. (zone playground.test., ttl 300)\n  A 203.0.113.7 ttl 300 ACTIVE\n  web.playground.test. does not resolve (failed to lookup address information) through the system resolver"
        );
        v.in_sync = false;
        v.records[0].ours = false;
        v.records[0].action = DnsAction::Update;
        v.resolver = Some(Resolution::TimedOut { seconds: 3 });
        assert_eq!(
            view_text(&v),
            "\ndns web.playground.test. (zone playground.test., ttl 300)\n  A 203.0.113.7 ttl 300 ACTIVE (UPDATE) (not made by ingot for this deployment)\n  does not hold 203.0.113.7 with ttl 300: the next deploy corrects it\n  web.playground.test. does not resolve (no answer within 3 s) through the system resolver"
        );
    }

    #[test]
    fn destroy_says_what_stayed() {
        let mut d = DnsLeft {
            name: "web.playground.test.".into(),
            deleted: vec![],
            kept: vec!["A 203.0.113.7".into()],
        };
        assert_eq!(
            left_text(&d),
            "; DNS record web.playground.test. (A 203.0.113.7) stayed (--delete-dns deletes it)"
        );
        d.deleted = std::mem::take(&mut d.kept);
        assert_eq!(
            left_text(&d),
            "; deleted DNS record web.playground.test. (A 203.0.113.7)"
        );
    }
}
