//! The Cinder client (`ingot::cloud::volume`) and Nova's volume
//! attachments (`ComputeService::attach_volume`) against the playground's
//! real Cinder (`scripts/playground/start --with-cinder`: cinder-api,
//! -scheduler and -volume with a FAKE file-backed volume driver, since no
//! LVM or Ceph runs here) and real Nova (FAKE compute driver, which takes
//! the attachment's connection as a real one would). Skipped (with a note)
//! without a playground, or with one started without Cinder, unless
//! `INGOT_REQUIRE_CINDER=1`.

use crate::cloud_build::FakeBase;
use crate::common::cloud::{unique, Playground};
use ingot::cloud::compute::{ComputeService, Nova};
use ingot::cloud::config::{self, Selection, Sources};
use ingot::cloud::volume::{
    wait_volume, Cinder, NewVolume, SnapshotStatus, VolumeService, VolumeStatus,
};
use ingot::cloud::Session;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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

fn playground() -> Option<Playground> {
    let pg = Playground::get()?;
    if !pg.has_cinder() {
        if std::env::var("INGOT_REQUIRE_CINDER").as_deref() == Ok("1") {
            panic!("the playground runs without Cinder and INGOT_REQUIRE_CINDER=1");
        }
        eprintln!(
            "SKIPPED: the playground in {} runs without Cinder (start --with-cinder)",
            pg.dir.display()
        );
        return None;
    }
    Some(pg)
}

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn volumes_found_by_metadata_snapshotted_attached_and_detached() {
    let Some(pg) = playground() else { return };
    let s = session(&pg);
    let dep = unique("vol");
    let base = FakeBase::upload(&pg, "ingot-playground", "boot", &[]);
    rt().block_on(async {
        // Pages of 1: the listing crosses page boundaries.
        let cinder = Cinder::from_session(&s).await.unwrap().with_page_size(1);
        let nova = Nova::from_session(&s).await.unwrap();
        let mine: BTreeMap<String, String> = [
            ("ingot_deployment".to_string(), dep.clone()),
            ("ingot_kind".to_string(), "state".to_string()),
        ]
        .into();
        let limits = cinder.volume_limits().await.unwrap();
        let id = cinder
            .create_volume(&NewVolume {
                name: format!("ingot-{dep}-state"),
                size_gb: 1,
                metadata: mine.clone(),
                ..NewVolume::default()
            })
            .await
            .unwrap();
        // A second volume of another deployment is never listed as ours.
        let other_meta: BTreeMap<String, String> =
            [("ingot_deployment".to_string(), format!("{dep}-other"))].into();
        let other = cinder
            .create_volume(&NewVolume {
                name: format!("ingot-{dep}-other"),
                size_gb: 1,
                metadata: other_meta,
                ..NewVolume::default()
            })
            .await
            .unwrap();
        let v = wait_volume(&cinder, &id, "available", WAIT, |v| {
            v.status == VolumeStatus::Available
        })
        .await
        .unwrap();
        assert_eq!(
            (v.size_gb, v.name.as_str()),
            (1, format!("ingot-{dep}-state").as_str())
        );
        let found = cinder.volumes(&mine).await.unwrap();
        assert_eq!(
            found.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
            [id.as_str()]
        );
        let after = cinder.volume_limits().await.unwrap();
        assert!(
            after.volumes.used > limits.volumes.used,
            "{limits:?} {after:?}"
        );
        cinder
            .update_volume_metadata(&id, &[("ingot_run".to_string(), "r1".to_string())].into())
            .await
            .unwrap();
        let v = cinder.volume(&id).await.unwrap().unwrap();
        assert_eq!(v.metadata.get("ingot_run").map(String::as_str), Some("r1"));
        assert_eq!(v.metadata.get("ingot_deployment"), Some(&dep));

        // A snapshot, found by its metadata, deleted.
        let snap = cinder
            .create_snapshot(&id, &format!("ingot-{dep}-backup"), &mine)
            .await
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let s = cinder.snapshot(&snap).await.unwrap().unwrap();
            if s.status == SnapshotStatus::Available {
                assert_eq!(s.volume_id, id);
                break;
            }
            assert!(
                s.status != SnapshotStatus::Error && Instant::now() < deadline,
                "{s:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let snaps = cinder.snapshots(&mine).await.unwrap();
        assert_eq!(
            snaps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            [snap.as_str()]
        );
        assert!(cinder.delete_snapshot(&snap).await.unwrap());
        let deadline = Instant::now() + WAIT;
        while cinder.snapshot(&snap).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "snapshot {snap} not deleted");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }

        // Attached to a server by Nova, detached again.
        let server = pg.openstack(
            "ingot-playground",
            &[
                "server",
                "create",
                "--image",
                &base.id,
                "--flavor",
                "ingot.tiny",
                "--network",
                "ingot-net",
                "--wait",
                &format!("{dep}-server"),
            ],
        );
        let server = server["id"].as_str().unwrap().to_string();
        nova.attach_volume(&server, &id).await.unwrap();
        let v = wait_volume(&cinder, &id, "in-use", WAIT, |v| {
            v.status == VolumeStatus::InUse
        })
        .await
        .unwrap();
        assert_eq!(v.servers(), [server.as_str()]);
        assert_eq!(
            nova.volume_attachments(&server).await.unwrap(),
            vec![id.clone()]
        );
        // Attached once only: a second attach is Nova's refusal, not a
        // second attachment.
        assert!(nova.attach_volume(&server, &id).await.is_err());
        assert!(nova.detach_volume(&server, &id).await.unwrap());
        let v = wait_volume(&cinder, &id, "available", WAIT, |v| {
            v.status == VolumeStatus::Available
        })
        .await
        .unwrap();
        assert!(v.attachments.is_empty(), "{v:?}");
        assert!(!nova.detach_volume(&server, &id).await.unwrap());
        assert!(nova.volume_attachments(&server).await.unwrap().is_empty());

        nova.delete_server(&server).await.unwrap();
        for v in [&id, &other] {
            assert!(cinder.delete_volume(v).await.unwrap());
        }
        let deadline = Instant::now() + WAIT;
        while cinder.volume(&id).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "volume {id} not deleted");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(!cinder.delete_volume(&id).await.unwrap());
        assert!(cinder.volume(&id).await.unwrap().is_none());
    });
    crate::cloud_build::delete_images(&pg, &base);
}
