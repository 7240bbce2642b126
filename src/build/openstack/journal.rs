//! The build journal: before a build creates anything in the cloud, it
//! says so in a small file on disk, synced, so that even a SIGKILL leaves a
//! trail for `ingot gc`. One JSON line per event in
//! `<state>/builds/<build id>.jsonl`; the file is removed once everything
//! the build created is accounted for (deleted, or released).
//!
//! The cloud carries the same facts (tags and metadata on every resource),
//! so `gc` also works from a machine that never saw the build, like a CI
//! runner after a restart; the journal adds what the cloud cannot say: a
//! create whose answer never came back, and whether the build's process is
//! still alive on this machine.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Server,
    Image,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Image => "image",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    Start {
        build: String,
        image: String,
        pid: u32,
        /// Keystone URL and project: a journal only speaks of one cloud.
        cloud: String,
        at: i64,
    },
    /// About to send the create request.
    Creating {
        kind: Kind,
        name: String,
        at: i64,
    },
    Created {
        kind: Kind,
        name: String,
        id: String,
        at: i64,
    },
    Deleted {
        kind: Kind,
        id: String,
        at: i64,
    },
    /// The image became a release: it is kept, not a leftover.
    Released {
        id: String,
        at: i64,
    },
}

pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

impl Journal {
    /// Starts the journal of one build.
    pub fn create(dir: &Path, build: &str, image: &str, cloud: &str) -> std::io::Result<Journal> {
        let dir = dir.join("builds");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{build}.jsonl"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let journal = Journal { path, file };
        journal.record(&Entry::Start {
            build: build.to_string(),
            image: image.to_string(),
            pid: std::process::id(),
            cloud: cloud.to_string(),
            at: crate::cloud::time::now(),
        })?;
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and syncs it: what is recorded survives a kill.
    pub fn record(&self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).expect("an entry serializes");
        line.push(b'\n');
        (&self.file).write_all(&line)?;
        self.file.sync_data()
    }

    /// Everything is accounted for: the trail is no longer needed.
    pub fn close(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One build's journal, read back.
#[derive(Debug, Clone)]
pub struct Trail {
    pub path: PathBuf,
    pub build: String,
    pub image: String,
    pub pid: u32,
    pub cloud: String,
    pub started: i64,
    /// What was (or may have been) created and is neither deleted nor
    /// released: `(kind, name, id if the answer came back)`.
    pub open: Vec<(Kind, String, Option<String>)>,
}

impl Trail {
    /// Whether the build's process still runs on this machine.
    pub fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
            && std::fs::read_to_string(format!("/proc/{}/cmdline", self.pid))
                .map(|c| c.contains("ingot"))
                .unwrap_or(false)
    }
}

/// Every journal under `state`; unreadable lines (a write cut by a kill)
/// are skipped.
pub fn read_all(state: &Path) -> Vec<Trail> {
    let dir = state.join("builds");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut trails: Vec<Trail> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|p| read(&p))
        .collect();
    trails.sort_by(|a, b| a.started.cmp(&b.started).then(a.build.cmp(&b.build)));
    trails
}

fn read(path: &Path) -> Option<Trail> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut trail: Option<Trail> = None;
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<Entry>(line) else {
            continue;
        };
        match entry {
            Entry::Start {
                build,
                image,
                pid,
                cloud,
                at,
            } => {
                trail = Some(Trail {
                    path: path.to_path_buf(),
                    build,
                    image,
                    pid,
                    cloud,
                    started: at,
                    open: Vec::new(),
                })
            }
            Entry::Creating { kind, name, .. } => {
                if let Some(t) = trail.as_mut() {
                    t.open.push((kind, name, None));
                }
            }
            Entry::Created { kind, name, id, .. } => {
                if let Some(t) = trail.as_mut() {
                    match t
                        .open
                        .iter_mut()
                        .find(|(k, n, i)| *k == kind && *n == name && i.is_none())
                    {
                        Some(open) => open.2 = Some(id),
                        None => t.open.push((kind, name, Some(id))),
                    }
                }
            }
            Entry::Deleted { id, .. } | Entry::Released { id, .. } => {
                if let Some(t) = trail.as_mut() {
                    t.open.retain(|(_, _, i)| i.as_deref() != Some(id.as_str()));
                }
            }
        }
    }
    trail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trail_lists_what_is_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::create(dir.path(), "b1", "web", "http://k/v3 p1").unwrap();
        let e = |entry: Entry| j.record(&entry).unwrap();
        e(Entry::Creating {
            kind: Kind::Server,
            name: "ingot-build-web-b1".into(),
            at: 1,
        });
        e(Entry::Created {
            kind: Kind::Server,
            name: "ingot-build-web-b1".into(),
            id: "s1".into(),
            at: 2,
        });
        e(Entry::Creating {
            kind: Kind::Image,
            name: "web-1.0-abc".into(),
            at: 3,
        });
        let trails = read_all(dir.path());
        assert_eq!(trails.len(), 1);
        assert_eq!(trails[0].pid, std::process::id());
        assert!(trails[0].alive());
        assert_eq!(
            trails[0].open,
            [
                (Kind::Server, "ingot-build-web-b1".into(), Some("s1".into())),
                (Kind::Image, "web-1.0-abc".into(), None)
            ]
        );
        e(Entry::Created {
            kind: Kind::Image,
            name: "web-1.0-abc".into(),
            id: "i1".into(),
            at: 4,
        });
        e(Entry::Deleted {
            kind: Kind::Server,
            id: "s1".into(),
            at: 5,
        });
        e(Entry::Released {
            id: "i1".into(),
            at: 6,
        });
        // A line cut by a kill is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(j.path())
            .unwrap()
            .write_all(b"{\"event\":\"crea")
            .unwrap();
        assert!(read_all(dir.path())[0].open.is_empty());
        j.close();
        assert!(read_all(dir.path()).is_empty());
    }
}
