//! The Designate client (`ingot::cloud::dns`) against the playground's real
//! Designate (`scripts/playground/start --with-dns`, on by default with
//! the Nova side): zone `playground.test.` of project ingot, recordsets
//! created, read, updated and deleted until the DNS servers have each
//! change. The playground's pool has Designate's fake backend as its
//! target; its mdns serves the zone, which is how changes become ACTIVE.
//! Skipped (with a note) without a playground, or with one started
//! without Designate.

use crate::common::cloud::{unique, Playground};
use ingot::cloud::config::{self, Selection, Sources};
use ingot::cloud::dns::{
    deployment_description, Designate, DnsAction, DnsService, DnsStatus, NewRecordset, RecordType,
    Recordset,
};
use ingot::cloud::{CloudError, Session};
use std::time::{Duration, Instant};

const ZONE: &str = "playground.test.";

fn session(pg: &Playground) -> Session {
    let mut sources = Sources::from_process();
    sources.env.retain(|k, _| !k.starts_with("OS_"));
    sources.env.insert(
        "OS_CLIENT_CONFIG_FILE".into(),
        pg.clouds.display().to_string(),
    );
    let selection = Selection {
        cloud: Some("ingot-playground".into()),
        ..Selection::default()
    };
    Session::new(config::resolve(&selection, &sources).unwrap()).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The playground, if it runs Designate and its catalog has `dns`.
fn playground() -> Option<Playground> {
    let pg = Playground::get()?;
    if !pg.has_dns() {
        eprintln!(
            "SKIPPED: the playground in {} runs without Designate (start --with-dns)",
            pg.dir.display()
        );
        return None;
    }
    Some(pg)
}

/// Polls until the recordset is ACTIVE (or `None` once gone, for
/// `gone`), bounded.
async fn settle(dns: &Designate<'_>, zone: &str, id: &str, gone: bool) -> Option<Recordset> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = dns.recordset(zone, id).await.unwrap();
        match &r {
            None if gone => return None,
            Some(r) if !gone && r.status == DnsStatus::Active => return Some(r.clone()),
            Some(r) if r.status == DnsStatus::Error => panic!("recordset in ERROR: {r:?}"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "recordset {id} did not settle: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[test]
fn designate_zone_and_recordsets_through_the_catalog() {
    let Some(pg) = playground() else { return };
    let s = session(&pg);
    rt().block_on(async {
        let dns = Designate::from_session(&s)
            .await
            .expect("dns in the catalog");
        assert!(dns.base().ends_with("/v2"), "{}", dns.base());

        // The zone start made, owned by project ingot; without the final
        // dot it is the same zone.
        let zone = dns.zone_by_name(ZONE).await.unwrap().expect("zone");
        assert_eq!(zone.name, ZONE);
        assert_eq!(
            (zone.status, zone.action),
            (DnsStatus::Active, DnsAction::Nothing)
        );
        assert_eq!(zone.project_id, s.project_id().await.unwrap());
        assert_eq!(
            dns.zone_by_name("playground.test")
                .await
                .unwrap()
                .map(|z| z.id),
            Some(zone.id.clone())
        );
        assert_eq!(dns.zone_by_name("nope.test.").await.unwrap(), None);
        let listed = dns.zones(&[]).await.unwrap();
        assert!(listed.iter().any(|z| z.id == zone.id));

        // Two deployments' records: A and AAAA, marked by description.
        let deployment = unique("dns");
        let name = format!("{deployment}.{ZONE}");
        let a = dns
            .create_recordset(
                &zone.id,
                &NewRecordset {
                    name: name.clone(),
                    record_type: RecordType::A,
                    records: vec!["198.51.100.20".into(), "198.51.100.21".into()],
                    ttl: Some(60),
                    description: Some(deployment_description(&deployment)),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (a.status, a.action),
            (DnsStatus::Pending, DnsAction::Create)
        );
        // Without the final dot: made fully qualified before sending.
        let aaaa = dns
            .create_recordset(
                &zone.id,
                &NewRecordset {
                    name: name.trim_end_matches('.').to_string(),
                    record_type: RecordType::Aaaa,
                    records: vec!["2001:db8:100::20".into()],
                    ttl: None,
                    description: Some(deployment_description(&deployment)),
                },
            )
            .await
            .unwrap();
        let a = settle(&dns, &zone.id, &a.id, false).await.unwrap();
        let aaaa = settle(&dns, &zone.id, &aaaa.id, false).await.unwrap();
        assert_eq!(a.name, name);
        let mut records = a.records.clone();
        records.sort();
        assert_eq!(records, ["198.51.100.20", "198.51.100.21"]);
        assert_eq!(
            (a.ttl, a.deployment()),
            (Some(60), Some(deployment.as_str()))
        );
        assert_eq!((aaaa.ttl, aaaa.record_type), (None, RecordType::Aaaa));

        // Found again by name and type, and by description.
        let found = dns
            .recordsets(&zone.id, &[("name", &name), ("type", "A")])
            .await
            .unwrap();
        assert_eq!(found.iter().map(|r| &r.id).collect::<Vec<_>>(), [&a.id]);
        let description = deployment_description(&deployment);
        let mut mine: Vec<String> = dns
            .recordsets(&zone.id, &[("description", &description)])
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        mine.sort();
        let mut want = vec![a.id.clone(), aaaa.id.clone()];
        want.sort();
        assert_eq!(mine, want);
        // All pages: the zone's SOA and NS, and these two, two at a time.
        let paged = Designate::new(&s, dns.base()).with_page_size(2);
        let all = paged.recordsets(&zone.id, &[]).await.unwrap();
        assert!(all.iter().any(|r| r.record_type == RecordType::Soa));
        assert!(all.iter().any(|r| r.id == aaaa.id));

        // The same name and type again: Designate's 409.
        let again = dns
            .create_recordset(
                &zone.id,
                &NewRecordset {
                    name: name.clone(),
                    record_type: RecordType::A,
                    records: vec!["198.51.100.30".into()],
                    ttl: None,
                    description: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(again.status(), Some(409), "{again}");

        // The blue/green switch: new records and TTL, description kept.
        let moved = dns
            .update_recordset(&zone.id, &a.id, &["198.51.100.22".into()], Some(30))
            .await
            .unwrap();
        assert_eq!(moved.status, DnsStatus::Pending);
        let moved = settle(&dns, &zone.id, &a.id, false).await.unwrap();
        assert_eq!(moved.records, ["198.51.100.22"]);
        assert_eq!(
            (moved.ttl, moved.deployment()),
            (Some(30), Some(deployment.as_str()))
        );

        // What Designate refuses itself comes back as its 400.
        let bad = dns
            .update_recordset(&zone.id, &a.id, &["not-an-address".into()], None)
            .await
            .unwrap_err();
        assert_eq!(bad.status(), Some(400), "{bad}");
        // What it would refuse with a less clear message, before sending.
        let empty = dns
            .create_recordset(
                &zone.id,
                &NewRecordset {
                    name: String::new(),
                    record_type: RecordType::A,
                    records: vec!["198.51.100.30".into()],
                    ttl: None,
                    description: None,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(empty, CloudError::Invalid { .. }), "{empty}");

        for r in [&a, &aaaa] {
            assert!(dns.delete_recordset(&zone.id, &r.id).await.unwrap());
        }
        for r in [&a, &aaaa] {
            assert_eq!(settle(&dns, &zone.id, &r.id, true).await, None);
            assert!(!dns.delete_recordset(&zone.id, &r.id).await.unwrap());
        }
    });
}
