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

use super::artifact::Artifact;
use super::{ReleaseError, P_BASE, P_DIGEST, P_IMAGE, P_LAYERS, P_SHA256, P_TOOL, P_VERSION, TAG};
use crate::cloud::image::NewImage;
use std::collections::BTreeMap;

/// Glance refuses longer property values.
const MAX_VALUE: usize = 255;
/// What SCS-0102 requires for `min_ram` is "enough to boot"; 1 GiB is
/// enough for every layer here but Jitsi, whose image file sets its own.
const DEFAULT_MIN_RAM_MB: u64 = 1024;
const GIB: u64 = 1024 * 1024 * 1024;

// Not `hypervisor_type`: Nova's scheduler keeps an image with it only on
// hosts of that type (ImagePropertiesFilter), and a default cannot know the
// cloud's; an image file may set it.

/// Core fields Glance manages itself or ingot sets from its options.
const CORE: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "tags",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "protected",
    "created_at",
    "updated_at",
    "disk_format",
    "container_format",
    "locations",
    "direct_url",
    "file",
    "schema",
    "self",
    "stores",
    "os_hidden",
];

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
pub fn image_name(a: &Artifact) -> String {
    format!("{}-{}-{}", a.name, a.version, a.short_digest())
}

/// The default login user of the distribution's cloud images.
fn original_user(os_distro: &str) -> &'static str {
    match os_distro {
        "ubuntu" => "ubuntu",
        "debian" => "debian",
        _ => "none",
    }
}

/// The image record `publish` creates. `built_at` is the build's end
/// (seconds since the epoch); `virtual_size` the disk's size in bytes.
pub fn new_image(
    a: &Artifact,
    visibility: &str,
    built_at: i64,
    virtual_size: Option<u64>,
) -> Result<NewImage, ReleaseError> {
    let bad = |key: &str, message: String| ReleaseError::Property {
        image: a.name.clone(),
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
    let description = if a.description.is_empty() {
        format!("{} {} built by ingot", a.name, a.version)
    } else {
        a.description.clone()
    };
    p.insert("image_description".into(), truncate(&description));

    let mut min_ram = DEFAULT_MIN_RAM_MB;
    let mut min_disk = virtual_size.map(|b| b.div_ceil(GIB));
    for (k, v) in &a.properties {
        if k.starts_with("ingot_") || k.starts_with("os_glance") || CORE.contains(&k.as_str()) {
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
        (P_IMAGE, a.name.clone()),
        (P_VERSION, a.version.clone()),
        (P_DIGEST, a.digest.clone()),
        (P_LAYERS, truncate(&a.layers.join(","))),
        (P_BASE, a.base_sha256.clone()),
        (P_SHA256, a.sha256.clone()),
        (P_TOOL, format!("ingot {}", env!("CARGO_PKG_VERSION"))),
        ("os_distro", a.os_distro.clone()),
        ("os_version", a.os_version.clone()),
        ("image_build_date", crate::cloud::time::format_utc(built_at)),
        (
            "image_original_user",
            original_user(&a.os_distro).to_string(),
        ),
    ];
    for (k, v) in fixed {
        p.insert(k.to_string(), v);
    }
    Ok(NewImage {
        name: image_name(a),
        disk_format: a.format.clone(),
        container_format: "bare".into(),
        visibility: visibility.to_string(),
        min_disk,
        min_ram: Some(min_ram),
        properties: p,
        tags: vec![TAG.to_string(), format!("os:{}", a.os_distro)],
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
    use std::path::PathBuf;

    pub(crate) fn artifact() -> Artifact {
        Artifact {
            dir: PathBuf::from("a"),
            image_file: PathBuf::from("a/image.qcow2"),
            name: "web-debian".into(),
            version: "2026.1.0".into(),
            description: "A web server".into(),
            digest: "sha256:6847e2d3e3955e6bedeb506aa62c3621113775631ddc747737c9d555fc6b785e"
                .into(),
            distro: "debian-12".into(),
            os_distro: "debian".into(),
            os_version: "12".into(),
            layers: vec!["base@1.0.0".into(), "nginx-certbot@1.0.0".into()],
            base_sha256: "1cfc".into(),
            base_source: "build:debian-archive".into(),
            format: "qcow2".into(),
            sha256: "f1f1".into(),
            bytes: 10,
            built_at: None,
            properties: [("hw_disk_bus", "scsi"), ("hw_scsi_model", "virtio-scsi")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn record_of_a_release() {
        let n = new_image(&artifact(), "private", 1_795_953_798, Some(3 * GIB + 1)).unwrap();
        assert_eq!(n.name, "web-debian-2026.1.0-6847e2d3e395");
        assert_eq!((n.min_disk, n.min_ram), (Some(4), Some(1024)));
        assert_eq!(n.tags, ["ingot", "os:debian"]);
        let p = |k: &str| n.properties.get(k).map(String::as_str);
        assert_eq!(p("hw_disk_bus"), Some("scsi"));
        assert_eq!(p("hw_scsi_model"), Some("virtio-scsi"));
        assert_eq!(p("image_build_date"), Some("2026-11-29 12:03:18"));
        assert_eq!(p("image_original_user"), Some("debian"));
        assert_eq!(p("ingot_layers"), Some("base@1.0.0,nginx-certbot@1.0.0"));
        assert_eq!(p("ingot_digest"), Some(artifact().digest.as_str()));
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
    fn the_image_file_sets_policy_but_not_ingots_facts() {
        let mut a = artifact();
        a.properties
            .insert("replace_frequency".into(), "monthly".into());
        a.properties.insert("min_ram".into(), "4096".into());
        let n = new_image(&a, "private", 0, None).unwrap();
        assert_eq!(n.properties["replace_frequency"], "monthly");
        assert_eq!(n.min_ram, Some(4096));

        let mut a = artifact();
        a.properties.insert("ingot_version".into(), "9".into());
        assert_eq!(
            new_image(&a, "private", 0, None).unwrap_err().to_string(),
            "image web-debian: property ingot_version: is set by ingot or Glance itself; remove it from the image's properties"
        );
        let mut a = artifact();
        a.properties
            .insert("replace_frequency".into(), "sometimes".into());
        assert_eq!(
            new_image(&a, "private", 0, None).unwrap_err().to_string(),
            "image web-debian: property replace_frequency: expected one of yearly, quarterly, monthly, weekly, daily, critical_bug, never, found \"sometimes\""
        );
        let mut a = artifact();
        a.properties.insert("uuid_validity".into(), "last-3".into());
        a.properties
            .insert("provided_until".into(), "2027-12-31".into());
        assert!(new_image(&a, "private", 0, None).is_ok());
        a.properties
            .insert("provided_until".into(), "forever".into());
        assert!(new_image(&a, "private", 0, None).is_err());
    }

    #[test]
    fn long_values_are_cut_to_what_glance_accepts() {
        let mut a = artifact();
        a.description = "x".repeat(400);
        let n = new_image(&a, "private", 0, None).unwrap();
        assert_eq!(n.properties["image_description"].chars().count(), 255);
    }
}
