//! `ingot prune`: delete old releases, keeping the newest N active ones and
//! every release a channel points to, a server was booted from, or Glance
//! protects. The plan is a pure function; `--dry-run` prints it.

use super::catalog::Release;
use super::ReleaseError;
use crate::cloud::image::ImageStatus;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decision {
    pub release: Release,
    pub delete: bool,
    pub reason: String,
}

/// An unfinished release younger than this may be a publish in progress.
const IN_PROGRESS_SECS: i64 = 15 * 60;

/// `releases` newest first, servers known; `now` in seconds since the epoch.
pub fn plan(releases: &[Release], keep: usize, now: i64) -> Result<Vec<Decision>, ReleaseError> {
    if keep == 0 {
        return Err(ReleaseError::KeepZero { keep });
    }
    let mut kept_recent = 0;
    Ok(releases
        .iter()
        .map(|r| {
            let (delete, reason) = if r.status == ImageStatus::Active && kept_recent < keep {
                kept_recent += 1;
                (false, format!("one of the {keep} newest"))
            } else if !r.channels.is_empty() {
                (false, format!("channel {}", r.channels.join(", ")))
            } else if r.in_use() {
                let names: Vec<&str> = r
                    .servers
                    .iter()
                    .flatten()
                    .map(|s| s.name.as_str())
                    .collect();
                (false, format!("used by {}", names.join(", ")))
            } else if r.protected {
                (false, "protected in Glance".to_string())
            } else if r.status == ImageStatus::Deactivated {
                (false, "deactivated by an operator".to_string())
            } else if r.status == ImageStatus::Active {
                (true, "older than the newest kept".to_string())
            } else if now - r.updated() < IN_PROGRESS_SECS {
                (
                    false,
                    format!(
                        "`{}` since {}: a publish may be running",
                        r.status, r.updated_at
                    ),
                )
            } else {
                (true, format!("`{}`: an unfinished upload", r.status))
            };
            Decision {
                release: r.clone(),
                delete,
                reason,
            }
        })
        .collect())
}

/// Deletes what the plan says, one by one; every failure is reported and
/// the others still happen. Returns the ids deleted.
pub async fn apply<S: crate::cloud::image::ImageService>(
    glance: &S,
    image: &str,
    decisions: &[Decision],
    progress: &crate::progress::Progress,
) -> Result<Vec<String>, ReleaseError> {
    let doomed: Vec<&Decision> = decisions.iter().filter(|d| d.delete).collect();
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for d in &doomed {
        progress.say(&format!(
            "deleting {} {} ({})",
            d.release.label(),
            d.release.id,
            d.reason
        ));
        match glance.delete(&d.release.id).await {
            Ok(_) => deleted.push(d.release.id.clone()),
            Err(e) => errors.push(format!("{}: {e}", d.release.id)),
        }
    }
    if errors.is_empty() {
        Ok(deleted)
    } else {
        Err(ReleaseError::PruneFailed {
            image: image.to_string(),
            failed: errors.len(),
            total: doomed.len(),
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::compute::Server;
    use crate::release::catalog::releases;
    use crate::release::catalog::tests::image;

    #[test]
    fn keeps_newest_channels_and_used_ones() {
        let mut queued = image("q", "0.9", "00000000000000", "2025-12-01T00:00:00Z", &[]);
        queued.status = ImageStatus::Queued;
        let mut fresh = image("f", "6", "ffffffffffffff", "2026-05-31T23:55:00Z", &[]);
        fresh.status = ImageStatus::Saving;
        let mut off = image("g", "0.8", "99999999999999", "2025-11-01T00:00:00Z", &[]);
        off.status = ImageStatus::Deactivated;
        let images = vec![
            image("a", "1", "aaaaaaaaaaaaaa", "2026-01-01T00:00:00Z", &[]),
            image(
                "b",
                "2",
                "bbbbbbbbbbbbbb",
                "2026-02-01T00:00:00Z",
                &["channel:stable"],
            ),
            image("c", "3", "cccccccccccccc", "2026-03-01T00:00:00Z", &[]),
            image("d", "4", "dddddddddddddd", "2026-04-01T00:00:00Z", &[]),
            image("e", "5", "eeeeeeeeeeeeee", "2026-05-01T00:00:00Z", &[]),
            queued,
            fresh,
            off,
        ];
        let servers = [Server {
            id: "s".into(),
            name: "web-1".into(),
            status: "ACTIVE".into(),
            image_id: Some("c".into()),
        }];
        let now = crate::cloud::time::parse_utc("2026-06-01T00:00:00Z").unwrap();
        let p = plan(&releases(images, Some(&servers)), 1, now).unwrap();
        let summary: Vec<(String, bool, String)> = p
            .iter()
            .map(|d| (d.release.id.clone(), d.delete, d.reason.clone()))
            .collect();
        let s = |id: &str, del, why: &str| (id.to_string(), del, why.to_string());
        assert_eq!(
            summary,
            [
                s(
                    "f",
                    false,
                    "`saving` since 2026-05-31T23:55:00Z: a publish may be running"
                ),
                s("e", false, "one of the 1 newest"),
                s("d", true, "older than the newest kept"),
                s("c", false, "used by web-1"),
                s("b", false, "channel stable"),
                s("a", true, "older than the newest kept"),
                s("q", true, "`queued`: an unfinished upload"),
                s("g", false, "deactivated by an operator"),
            ]
        );
        assert_eq!(
            plan(&[], 0, now).unwrap_err().to_string(),
            "--keep 0: keep at least 1 release"
        );
    }
}
