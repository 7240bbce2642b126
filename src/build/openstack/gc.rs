//! `ingot gc`: what interrupted or killed builds left in the cloud, found
//! two ways — the local journals of builds whose process is gone, and the
//! cloud's own record: build servers (tag `ingot-build` and an
//! `ingot_build` metadata key) and snapshots or base uploads that never
//! became usable (`ingot_state: building` and an `ingot_build` property).
//! A resource without those marks is never touched, whatever its name.

use super::journal::{self, Kind, Trail};
use super::{BUILD_TAG, M_BUILD, M_LEASE, P_STATE, STATE_BUILDING};
use crate::build::BuildError;
use crate::cloud::compute::ComputeService;
use crate::cloud::image::ImageService;
use crate::progress::Progress;
use serde::Serialize;
use std::path::PathBuf;

pub struct GcOptions {
    pub dry_run: bool,
    /// Only what is at least this old (seconds), unless a journal proves
    /// its build is over.
    pub older_than: i64,
    /// Delete leased resources too: the user knows no build is running.
    pub ignore_leases: bool,
    pub state: PathBuf,
    /// The cloud's identity, as builds write it into their journal.
    pub cloud: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Deleted,
    WouldDelete,
    /// Kept, and why.
    Kept(String),
    Failed(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub build: String,
    /// Seconds since it was created, when the cloud says.
    pub age: Option<i64>,
    /// `journal` or `cloud`: how it was found.
    pub found_by: &'static str,
    pub action: Action,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub items: Vec<Item>,
    /// Journals removed because everything in them is accounted for.
    pub journals_closed: Vec<PathBuf>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i.action, Action::Failed(_)))
            .count()
    }
}

/// `30m`, `2h`, `1d`, `90s`, `0`: seconds.
pub fn parse_age(text: &str) -> Option<i64> {
    let text = text.trim();
    if text == "0" {
        return Some(0);
    }
    let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(unit)
}

pub async fn gc<C: ComputeService, I: ImageService>(
    nova: &C,
    glance: &I,
    opts: &GcOptions,
    progress: &Progress,
) -> Result<Report, BuildError> {
    let now = crate::cloud::time::now();
    let mut report = Report {
        dry_run: opts.dry_run,
        ..Report::default()
    };
    let trails: Vec<Trail> = journal::read_all(&opts.state)
        .into_iter()
        .filter(|t| t.cloud == opts.cloud)
        .collect();
    let running: Vec<&Trail> = trails.iter().filter(|t| t.alive()).collect();
    let is_running = |build: &str| running.iter().any(|t| t.build == build);

    // What the cloud itself marks as ingot's leftovers.
    let servers = nova.servers_detail(&[("tags", BUILD_TAG)]).await?;
    let mut handled: Vec<String> = Vec::new();
    for s in servers {
        let Some(build) = s.metadata.get(M_BUILD).cloned() else {
            continue;
        };
        let age = crate::cloud::time::parse_utc(&s.created).map(|t| now - t);
        let from_dead_journal = trails.iter().any(|t| t.build == build && !t.alive());
        let lease = live_lease(s.metadata.get(M_LEASE).map(String::as_str), now, opts);
        let action = if is_running(&build) {
            Action::Kept(format!("build {build} is still running here"))
        } else if let (false, Some(until)) = (from_dead_journal, lease) {
            Action::Kept(leased(&build, until))
        } else if !from_dead_journal && age.is_some_and(|a| a < opts.older_than) {
            Action::Kept(format!("younger than {} s (--older-than)", opts.older_than))
        } else if opts.dry_run {
            Action::WouldDelete
        } else {
            outcome(nova.delete_server(&s.id).await)
        };
        handled.push(s.id.clone());
        report.items.push(Item {
            kind: "server",
            id: s.id,
            name: s.name,
            build,
            age,
            found_by: if from_dead_journal {
                "journal"
            } else {
                "cloud"
            },
            action,
        });
    }
    let images = glance.list(&[(P_STATE, STATE_BUILDING)]).await?;
    for i in images {
        let Some(build) = i.property(M_BUILD).map(str::to_string) else {
            continue;
        };
        let age = crate::cloud::time::parse_utc(&i.created_at).map(|t| now - t);
        let from_dead_journal = trails.iter().any(|t| t.build == build && !t.alive());
        let lease = live_lease(i.property(M_LEASE), now, opts);
        let action = if is_running(&build) {
            Action::Kept(format!("build {build} is still running here"))
        } else if let (false, Some(until)) = (from_dead_journal, lease) {
            Action::Kept(leased(&build, until))
        } else if !from_dead_journal && age.is_some_and(|a| a < opts.older_than) {
            Action::Kept(format!("younger than {} s (--older-than)", opts.older_than))
        } else if opts.dry_run {
            Action::WouldDelete
        } else {
            outcome(glance.delete(&i.id).await)
        };
        handled.push(i.id.clone());
        report.items.push(Item {
            kind: "image",
            id: i.id.clone(),
            name: i.name.clone().unwrap_or_default(),
            build,
            age,
            found_by: if from_dead_journal {
                "journal"
            } else {
                "cloud"
            },
            action,
        });
    }

    // What only the journals know: resources by id the scan did not list.
    for t in trails.iter().filter(|t| !t.alive()) {
        let mut open = false;
        for (kind, name, id) in &t.open {
            let id = match id {
                Some(id) => id.clone(),
                // A create whose answer never came: the resource may exist,
                // or appear within seconds (the service still works on a
                // request its client dropped). Looked for by its name and
                // this build's mark, for a while.
                None => match find_uncertain(nova, glance, *kind, name, &t.build).await? {
                    Some(id) => id,
                    None => continue,
                },
            };
            let id = &id;
            if handled.contains(id) {
                continue;
            }
            let action = match kind {
                Kind::Server => match nova.server(id).await? {
                    Some(s) if s.metadata.get(M_BUILD) == Some(&t.build) => {
                        if opts.dry_run {
                            Action::WouldDelete
                        } else {
                            outcome(nova.delete_server(id).await)
                        }
                    }
                    Some(_) => Action::Kept("does not carry this build's marks".into()),
                    None => continue,
                },
                Kind::Image => match glance.get(id).await? {
                    Some(i) if i.property(P_STATE) == Some(STATE_BUILDING) => {
                        if opts.dry_run {
                            Action::WouldDelete
                        } else {
                            outcome(glance.delete(id).await)
                        }
                    }
                    // A release, or not ours: kept.
                    Some(_) | None => continue,
                },
            };
            open |= !matches!(action, Action::Deleted);
            report.items.push(Item {
                kind: kind.name(),
                id: id.clone(),
                name: name.clone(),
                build: t.build.clone(),
                age: None,
                found_by: "journal",
                action,
            });
        }
        let ours_left = report
            .items
            .iter()
            .any(|i| i.build == t.build && !matches!(i.action, Action::Deleted));
        if !open && !ours_left && !opts.dry_run {
            let _ = std::fs::remove_file(&t.path);
            report.journals_closed.push(t.path.clone());
        }
    }
    for i in &report.items {
        progress.say(&format!(
            "{} {} {} ({}, build {}): {}",
            match i.action {
                Action::Deleted => "deleted",
                Action::WouldDelete => "would delete",
                Action::Kept(_) => "kept",
                Action::Failed(_) => "FAILED to delete",
            },
            i.kind,
            i.id,
            i.name,
            i.build,
            match &i.action {
                Action::Kept(why) | Action::Failed(why) => why.clone(),
                _ => format!("found by the {}", i.found_by),
            }
        ));
    }
    Ok(report)
}

/// The end of a resource's lease while it runs, unless leases are ignored.
/// A lease that cannot be read is no lease: it cannot protect anything.
fn live_lease(value: Option<&str>, now: i64, opts: &GcOptions) -> Option<i64> {
    let until: i64 = value?.trim().parse().ok()?;
    (!opts.ignore_leases && until > now).then_some(until)
}

fn leased(build: &str, until: i64) -> String {
    format!(
        "build {build} may still be running on another machine (its lease ends {} UTC); \
         --ignore-leases deletes it anyway",
        crate::cloud::time::format_utc(until)
    )
}

/// How long `gc` looks for what a create whose answer never came made.
const UNCERTAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

async fn find_uncertain<C: ComputeService, I: ImageService>(
    nova: &C,
    glance: &I,
    kind: Kind,
    name: &str,
    build: &str,
) -> Result<Option<String>, BuildError> {
    let deadline = std::time::Instant::now() + UNCERTAIN_WAIT;
    loop {
        let found = match kind {
            Kind::Server => {
                let pattern = format!("^{}$", regex_escape(name));
                nova.servers_detail(&[("name", pattern.as_str())])
                    .await?
                    .into_iter()
                    .find(|s| s.metadata.get(M_BUILD).map(String::as_str) == Some(build))
                    .map(|s| s.id)
            }
            Kind::Image => glance
                .list(&[(M_BUILD, build)])
                .await?
                .into_iter()
                .find(|i| i.property(P_STATE) == Some(STATE_BUILDING))
                .map(|i| i.id),
        };
        if found.is_some() || std::time::Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Nova's name filter is a regular expression.
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

fn outcome<T>(result: Result<T, crate::cloud::CloudError>) -> Action {
    match result {
        Ok(_) => Action::Deleted,
        Err(e) => Action::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_exact_patterns() {
        assert_eq!(
            regex_escape("ingot-build-web.x-1a"),
            "ingot-build-web\\.x-1a"
        );
    }

    #[test]
    fn leases_protect_until_they_end_unless_ignored() {
        let mut opts = GcOptions {
            dry_run: false,
            older_than: 0,
            ignore_leases: false,
            state: PathBuf::new(),
            cloud: String::new(),
        };
        assert_eq!(live_lease(Some("2000"), 1000, &opts), Some(2000));
        assert_eq!(live_lease(Some("999"), 1000, &opts), None);
        assert_eq!(live_lease(Some("soon"), 1000, &opts), None);
        assert_eq!(live_lease(None, 1000, &opts), None);
        opts.ignore_leases = true;
        assert_eq!(live_lease(Some("2000"), 1000, &opts), None);
        assert_eq!(
            leased("1a2b", 0),
            "build 1a2b may still be running on another machine (its lease ends 1970-01-01 00:00:00 UTC); \
             --ignore-leases deletes it anyway"
        );
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("0"), Some(0));
        assert_eq!(parse_age("90s"), Some(90));
        assert_eq!(parse_age("30m"), Some(1800));
        assert_eq!(parse_age("2h"), Some(7200));
        assert_eq!(parse_age("1d"), Some(86400));
        assert_eq!(parse_age("1w"), None);
        assert_eq!(parse_age("h"), None);
        assert_eq!(parse_age(""), None);
    }
}
