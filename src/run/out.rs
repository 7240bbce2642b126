//! `render --out DIR`: the three files written as one unit.
//!
//! The new set is written and synced in a staging folder beside `DIR`,
//! then swapped in: the old folder is renamed aside, the staging folder
//! renamed to `DIR`, the old one removed. `DIR` therefore holds the whole
//! old set or the whole new one (for an instant between the two renames,
//! nothing), never user-data of one render beside the manifest of another.
//! If the second rename fails the old folder is put back; on any failure
//! the staging folder is removed.
//!
//! Because the folder is replaced, `DIR` must hold nothing but what ingot
//! writes there; anything else (a file of the user's, a folder where a file
//! goes) is refused before anything is touched. A symbolic link to a
//! folder is followed: the folder it leads to is replaced.

use crate::error::Error;
use crate::render::Rendered;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const MANIFEST: &str = "manifest.json";

pub fn write_out(out: &Path, rendered: &Rendered) -> Result<(), Error> {
    let mut manifest = serde_json::to_vec_pretty(&rendered.manifest).expect("json");
    manifest.push(b'\n');
    let files: [(String, &[u8], u32); 3] = [
        (rendered.bake.file_name(), &rendered.bake.bytes, 0o644),
        // The boot document may hold secrets.
        (rendered.boot.file_name(), &rendered.boot.bytes, 0o600),
        (MANIFEST.into(), &manifest, 0o644),
    ];
    write_set(out, &files, &|from, to| fs::rename(from, to))
}

type Rename<'a> = dyn Fn(&Path, &Path) -> std::io::Result<()> + 'a;

fn write_err(path: &Path, source: std::io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn other(path: &Path, message: &str) -> Error {
    write_err(path, std::io::Error::other(message.to_string()))
}

/// The whole swap, with `rename` injectable so tests can make it fail.
fn write_set(out: &Path, files: &[(String, &[u8], u32)], rename: &Rename) -> Result<(), Error> {
    let out = match fs::symlink_metadata(out) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(out).map_err(|e| write_err(out, e))?
        }
        _ => out.to_path_buf(),
    };
    let old = match fs::metadata(&out) {
        Ok(m) if m.is_dir() => Some(m.permissions()),
        Ok(_) => return Err(other(&out, "exists and is not a folder")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(write_err(&out, e)),
    };
    if old.is_some() {
        refuse_foreign(&out, files)?;
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| write_err(&parent, e))?;
    let pid = std::process::id();
    let staging = parent.join(format!(".{name}.staging-{pid}"));
    let aside = parent.join(format!(".{name}.old-{pid}"));
    let _ = fs::remove_dir_all(&staging);
    let result = stage(&staging, files, old.as_ref()).and_then(|()| {
        if old.is_none() {
            return rename(&staging, &out).map_err(|e| write_err(&out, e));
        }
        rename(&out, &aside).map_err(|e| write_err(&out, e))?;
        if let Err(e) = rename(&staging, &out) {
            // Put the old set back; if even that fails, say where it is.
            return Err(match rename(&aside, &out) {
                Ok(()) => write_err(&out, e),
                Err(back) => other(
                    &out,
                    &format!(
                        "{e}; the previous files are in {} ({back})",
                        aside.display()
                    ),
                ),
            });
        }
        let _ = fs::remove_dir_all(&aside);
        Ok(())
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// `out` may hold ingot's three files only, each a plain file.
fn refuse_foreign(out: &Path, files: &[(String, &[u8], u32)]) -> Result<(), Error> {
    let entries = fs::read_dir(out).map_err(|e| write_err(out, e))?;
    let mut foreign = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| write_err(out, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let ours = files.iter().any(|(n, _, _)| *n == name);
        let is_file = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        if ours && !is_file {
            return Err(other(&path, "exists and is not a file"));
        }
        if !ours {
            foreign.push(name);
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    Err(other(
        out,
        &format!(
            "holds files ingot did not write ({}): --out is replaced as a whole, give an empty or new folder",
            foreign.join(", ")
        ),
    ))
}

fn stage(
    staging: &Path,
    files: &[(String, &[u8], u32)],
    perms: Option<&fs::Permissions>,
) -> Result<(), Error> {
    fs::create_dir(staging).map_err(|e| write_err(staging, e))?;
    for (name, bytes, mode) in files {
        let path = staging.join(name);
        write_file(&path, bytes, *mode).map_err(|e| write_err(&path, e))?;
    }
    if let Some(p) = perms {
        fs::set_permissions(staging, p.clone()).map_err(|e| write_err(staging, e))?;
    }
    // The folder's entries reach the disk before it is renamed into place.
    fs::File::open(staging)
        .and_then(|d| d.sync_all())
        .map_err(|e| write_err(staging, e))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn set(tag: &str) -> Vec<(String, Vec<u8>, u32)> {
        ["bake.user-data", "boot.user-data", MANIFEST]
            .iter()
            .map(|n| (n.to_string(), format!("{tag} {n}").into_bytes(), 0o644))
            .collect()
    }

    fn write(out: &Path, tag: &str, rename: &Rename) -> Result<(), Error> {
        let files = set(tag);
        let refs: Vec<(String, &[u8], u32)> = files
            .iter()
            .map(|(n, b, m)| (n.clone(), &b[..], *m))
            .collect();
        write_set(out, &refs, rename)
    }

    fn contents(out: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(out)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                fs::read_to_string(p).unwrap()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failed_swap_keeps_the_whole_old_set() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        write(&out, "old", &|a, b| fs::rename(a, b)).unwrap();
        // The second rename (staging -> out) fails.
        let calls = Cell::new(0);
        let flaky = |a: &Path, b: &Path| {
            calls.set(calls.get() + 1);
            if calls.get() == 2 {
                Err(std::io::Error::other("injected"))
            } else {
                fs::rename(a, b)
            }
        };
        let err = write(&out, "new", &flaky).unwrap_err().to_string();
        assert!(err.ends_with("cannot write: injected"), "{err}");
        assert!(contents(&out).iter().all(|c| c.starts_with("old ")));
        assert_eq!(contents(&out).len(), 3);
        // Nothing left beside it.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        write(&out, "new", &|a, b| fs::rename(a, b)).unwrap();
        assert!(contents(&out).iter().all(|c| c.starts_with("new ")));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_folder_with_other_files_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("notes.txt"), "mine").unwrap();
        let err = write(&out, "new", &|a, b| fs::rename(a, b))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("holds files ingot did not write (notes.txt)"),
            "{err}"
        );
        assert_eq!(contents(&out), ["mine"]);
    }
}
