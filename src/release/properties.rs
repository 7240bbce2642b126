//! The Glance record of a release: its name, tags and properties. Pure:
//! the same artifact and dates give the same record.
//!
//! Properties, later ones winning:
//! 1. defaults: `architecture`, `os_type`, `hw_disk_bus`,
//!    `hw_rng_model`, and the SCS-0102 policy fields (`replace_frequency:
//!    never`, `provided_until: none`, `uuid_validity: notice`,
//!    `image_source: private`);
//! 2. the image file's `properties:`;
//! 3. what ingot knows and nobody may override: `ingot_*`, `os_distro`,
//!    `os_version`, `image_build_date`, `image_original_user`.

use super::{
    ReleaseError, P_BASE, P_BASE_SOURCE, P_DIGEST, P_IMAGE, P_LAYERS, P_SET, P_SHA256, P_TOOL,
    P_VERSION, TAG,
};
use crate::cloud::image::NewImage;
use crate::manifest::{BuildRecord, Manifest};
use std::collections::BTreeMap;

/// Glance refuses longer property values.
const MAX_VALUE: usize = crate::model::names::PROPERTY_VALUE_MAX;
/// What SCS-0102 requires for `min_ram` is "enough to boot"; 1 GiB is
/// enough for every layer here but Jitsi, whose image file sets its own.
pub const DEFAULT_MIN_RAM_MB: u64 = 1024;
const GIB: u64 = 1024 * 1024 * 1024;

// Not `hypervisor_type`: Nova's scheduler keeps an image with it only on
// hosts of that type (ImagePropertiesFilter), and a default cannot know the
// cloud's; an image file may set it.

/// Core fields Glance manages itself or ingot sets from its options; the
/// engine owns the list, so that `check` refuses them before a build.
const CORE: &[&str] = crate::model::names::GLANCE_CORE_PROPERTIES;

/// Values of SCS-0102 fields that have a fixed vocabulary.
const REPLACE_FREQUENCY: &[&str] = &[
    "yearly",
    "quarterly",
    "monthly",
    "weekly",
    "daily",
    "critical_bug",
    "never",
];

/// The Glance name of a release: unique per build, readable, the same as
/// the artifact folder: `web-debian-2026.1.0-6847e2d3e395`.
pub fn image_name(m: &Manifest) -> String {
    format!("{}-{}-{}", m.image.name, m.image.version, m.short_digest())
}

/// The default login user of the distribution's cloud images.
fn original_user(os_distro: &str) -> &'static str {
    match os_distro {
        "ubuntu" => "ubuntu",
        "debian" => "debian",
        _ => "none",
    }
}

/// The `min_ram` an image file asks for, if it does and it is a number.
pub fn min_ram_mb(m: &Manifest) -> Option<u64> {
    m.image.properties.get("min_ram")?.parse().ok()
}

/// The image record `publish` creates. `built_at` is the build's end
/// (seconds since the epoch); `virtual_size` the disk's size in bytes.
pub fn new_image(
    m: &Manifest,
    build: &BuildRecord,
    visibility: &str,
    built_at: i64,
    virtual_size: Option<u64>,
) -> Result<NewImage, ReleaseError> {
    let bad = |key: &str, message: String| ReleaseError::Property {
        image: m.image.name.clone(),
        key: key.to_string(),
        message,
    };
    let mut p: BTreeMap<String, String> = BTreeMap::new();
    let defaults = [
        ("architecture", "x86_64"),
        ("os_type", "linux"),
        ("hw_disk_bus", "virtio"),
        ("hw_rng_model", "virtio"),
        ("replace_frequency", "never"),
        ("provided_until", "none"),
        ("uuid_validity", "notice"),
        ("image_source", "private"),
    ];
    for (k, v) in defaults {
        p.insert(k.into(), v.into());
    }
    let description = if m.image.description.is_empty() {
        format!("{} {} built by ingot", m.image.name, m.image.version)
    } else {
        m.image.description.clone()
    };
    p.insert("image_description".into(), truncate(&description));

    let mut min_ram = DEFAULT_MIN_RAM_MB;
    let mut min_disk = virtual_size.map(|b| b.div_ceil(GIB));
    for (k, v) in &m.image.properties {
        if k.starts_with("ingot_")
            || k.starts_with("os_glance")
            || CORE.contains(&k.as_str())
            || crate::model::names::INGOT_FACT_PROPERTIES.contains(&k.as_str())
        {
            return Err(bad(
                k,
                "is set by ingot or Glance itself; remove it from the image's properties".into(),
            ));
        }
        match k.as_str() {
            "min_ram" => {
                min_ram = v
                    .parse()
                    .map_err(|_| bad(k, format!("expected MiB as a whole number, found {v:?}")))?
            }
            "min_disk" => {
                let d: u64 = v
                    .parse()
                    .map_err(|_| bad(k, format!("expected GiB as a whole number, found {v:?}")))?;
                if min_disk.is_some_and(|auto| d < auto) {
                    return Err(bad(
                        k,
                        format!(
                            "{d} GiB is smaller than the image's disk ({} GiB)",
                            min_disk.unwrap_or(0)
                        ),
                    ));
                }
                min_disk = Some(d);
            }
            "replace_frequency" if !REPLACE_FREQUENCY.contains(&v.as_str()) => {
                return Err(bad(
                    k,
                    format!(
                        "expected one of {}, found {v:?}",
                        REPLACE_FREQUENCY.join(", ")
                    ),
                ))
            }
            "provided_until" | "uuid_validity" if !scs_date_or_word(k, v) => {
                return Err(bad(
                    k,
                    format!(
                        "expected YYYY-MM-DD or one of {}, found {v:?}",
                        scs_words(k)
                    ),
                ))
            }
            _ => {
                if v.chars().count() > MAX_VALUE {
                    return Err(bad(
                        k,
                        format!("is longer than Glance's {MAX_VALUE} characters"),
                    ));
                }
                p.insert(k.clone(), v.clone());
            }
        }
    }

    let fixed = [
        (P_IMAGE, m.image.name.clone()),
        (P_VERSION, m.image.version.clone()),
        (P_DIGEST, m.input_digest.clone()),
        (P_LAYERS, truncate(&m.layer_list().join(","))),
        (P_SHA256, build.sha256().to_string()),
        (P_TOOL, format!("ingot {}", env!("CARGO_PKG_VERSION"))),
        ("os_distro", m.image.os_distro.clone()),
        ("os_version", m.image.os_version.clone()),
        ("image_build_date", crate::cloud::time::format_utc(built_at)),
        (
            "image_original_user",
            original_user(&m.image.os_distro).to_string(),
        ),
    ];
    for (k, v) in fixed {
        p.insert(k.to_string(), v);
    }
    if !m.sets.is_empty() {
        let sets = serde_json::to_string(&m.sets).expect("strings serialize");
        // Cut, it could not reproduce the render: refused, not truncated.
        if sets.chars().count() > MAX_VALUE {
            return Err(bad(
                P_SET,
                format!(
                    "the --set values take {} characters, more than Glance's {MAX_VALUE}: \
                     set them in the image file's params instead",
                    sets.chars().count()
                ),
            ));
        }
        p.insert(P_SET.to_string(), sets);
    }
    match &build.base.sha256 {
        Some(sha) => p.insert(P_BASE.to_string(), sha.clone()),
        // A provider's base ingot never downloaded: named by where it is.
        None => p.insert(P_BASE_SOURCE.to_string(), build.base.source.clone()),
    };
    Ok(NewImage {
        name: image_name(m),
        disk_format: build.disk_format().to_string(),
        container_format: "bare".into(),
        visibility: visibility.to_string(),
        min_disk,
        min_ram: Some(min_ram),
        properties: p,
        tags: vec![TAG.to_string(), format!("os:{}", m.image.os_distro)],
    })
}

fn scs_words(key: &str) -> &'static str {
    if key == "uuid_validity" {
        "none, notice, forever, last-N"
    } else {
        "none, notice"
    }
}

fn scs_date_or_word(key: &str, v: &str) -> bool {
    let date = v.len() == 10 && crate::cloud::time::parse_utc(&format!("{v}T00:00:00Z")).is_some();
    let word = match key {
        "uuid_validity" => {
            matches!(v, "none" | "notice" | "forever")
                || v.strip_prefix("last-")
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        }
        _ => matches!(v, "none" | "notice"),
    };
    date || word
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_VALUE - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden fixture's manifest as a built `web-debian` artifact.
    pub(crate) fn manifest() -> Manifest {
        let text = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden/fixture/manifest.json"),
        )
        .unwrap();
        let mut m = Manifest::parse(&text, std::path::Path::new("m.json")).unwrap();
        m.image.name = "web-debian".into();
        m.image.version = "2026.1.0".into();
        m.image.description = "A web server".into();
        m.input_digest =
            "sha256:6847e2d3e3955e6bedeb506aa62c3621113775631ddc747737c9d555fc6b785e".into();
        m.layers = vec![
            crate::manifest::LayerRef {
                name: "base".into(),
                version: "1.0.0".into(),
            },
            crate::manifest::LayerRef {
                name: "nginx-certbot".into(),
                version: "1.0.0".into(),
            },
        ];
        m.image.properties = [("hw_disk_bus", "scsi"), ("hw_scsi_model", "virtio-scsi")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.build = Some(BuildRecord {
            builder: crate::manifest::BuilderKind::Qemu,
            base: crate::manifest::BaseRecord {
                sha256: Some("1cfc".into()),
                sha512: None,
                source: "build:debian-archive".into(),
                format: "qcow2".into(),
            },
            image: Some(crate::manifest::ImageFile {
                file: "image.qcow2".into(),
                format: "qcow2".into(),
                compression: "zstd".into(),
                sha256: "f1f1".into(),
                bytes: 10,
            }),
            glance: None,
            cloud_init_status: 0,
            finished_at: "2026-11-29T12:03:18Z".into(),
            seconds: crate::manifest::Seconds {
                base: 0.0,
                cloud_init: None,
                bake: 0.0,
                convert: 0.0,
                hash: 0.0,
                total: 0.0,
            },
        });
        m
    }

    fn new_image(
        m: &Manifest,
        visibility: &str,
        built_at: i64,
        virtual_size: Option<u64>,
    ) -> Result<NewImage, ReleaseError> {
        super::new_image(
            m,
            m.build.as_ref().unwrap(),
            visibility,
            built_at,
            virtual_size,
        )
    }

    #[test]
    fn record_of_a_release() {
        let n = new_image(&manifest(), "private", 1_795_953_798, Some(3 * GIB + 1)).unwrap();
        assert_eq!(n.name, "web-debian-2026.1.0-6847e2d3e395");
        assert_eq!((n.min_disk, n.min_ram), (Some(4), Some(1024)));
        assert_eq!(n.tags, ["ingot", "os:debian"]);
        let p = |k: &str| n.properties.get(k).map(String::as_str);
        assert_eq!(p("hw_disk_bus"), Some("scsi"));
        assert_eq!(p("hw_scsi_model"), Some("virtio-scsi"));
        assert_eq!(p("image_build_date"), Some("2026-11-29 12:03:18"));
        assert_eq!(p("image_original_user"), Some("debian"));
        assert_eq!(p("ingot_layers"), Some("base@1.0.0,nginx-certbot@1.0.0"));
        assert_eq!(p("ingot_digest"), Some(manifest().input_digest.as_str()));
        for scs in [
            "architecture",
            "os_distro",
            "os_version",
            "hw_disk_bus",
            "replace_frequency",
            "provided_until",
            "uuid_validity",
            "image_source",
            "image_description",
            "image_build_date",
            "image_original_user",
        ] {
            assert!(p(scs).is_some(), "{scs}");
        }
    }

    #[test]
    fn set_values_are_kept_to_reproduce_the_render_or_refused() {
        let mut m = manifest();
        m.sets.clear();
        assert!(!new_image(&m, "private", 0, None)
            .unwrap()
            .properties
            .contains_key(P_SET));
        m.sets.insert("certbot".into(), "false".into());
        m.sets.insert("fqdn".into(), "a.example.org".into());
        let n = new_image(&m, "private", 0, None).unwrap();
        assert_eq!(
            n.properties.get(P_SET).map(String::as_str),
            Some(r#"{"certbot":"false","fqdn":"a.example.org"}"#)
        );
        m.sets.insert("long".into(), "x".repeat(300));
        let err = new_image(&m, "private", 0, None).unwrap_err().to_string();
        assert!(
            err.contains("the --set values take 352 characters, more than Glance's 255"),
            "{err}"
        );
    }

    #[test]
    fn the_image_file_sets_policy_but_not_ingots_facts() {
        let mut a = manifest();
        a.image
            .properties
            .insert("replace_frequency".into(), "monthly".into());
        a.image.properties.insert("min_ram".into(), "4096".into());
        let n = new_image(&a, "private", 0, None).unwrap();
        assert_eq!(n.properties["replace_frequency"], "monthly");
        assert_eq!(n.min_ram, Some(4096));

        let mut a = manifest();
        a.image
            .properties
            .insert("ingot_version".into(), "9".into());
        assert_eq!(
            new_image(&a, "private", 0, None).unwrap_err().to_string(),
            "image web-debian: property ingot_version: is set by ingot or Glance itself; remove it from the image's properties"
        );
        let mut a = manifest();
        a.image
            .properties
            .insert("replace_frequency".into(), "sometimes".into());
        assert_eq!(
            new_image(&a, "private", 0, None).unwrap_err().to_string(),
            "image web-debian: property replace_frequency: expected one of yearly, quarterly, monthly, weekly, daily, critical_bug, never, found \"sometimes\""
        );
        let mut a = manifest();
        a.image
            .properties
            .insert("uuid_validity".into(), "last-3".into());
        a.image
            .properties
            .insert("provided_until".into(), "2027-12-31".into());
        assert!(new_image(&a, "private", 0, None).is_ok());
        a.image
            .properties
            .insert("provided_until".into(), "forever".into());
        assert!(new_image(&a, "private", 0, None).is_err());
    }

    #[test]
    fn long_values_are_cut_to_what_glance_accepts() {
        let mut a = manifest();
        a.image.description = "x".repeat(400);
        let n = new_image(&a, "private", 0, None).unwrap();
        assert_eq!(n.properties["image_description"].chars().count(), 255);
    }
}
