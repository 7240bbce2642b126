//! Which process a deploy runs in, said so that another process can tell
//! whether it still runs. A new server carries its run's owner in its
//! metadata beside the lease: the next deploy on the same machine knows at
//! once that a killed run's candidate belongs to nobody, without waiting
//! out the lease (half an hour past the boot timeout) and without a local
//! file. From another machine nothing can be proved, and the lease decides
//! as before.
//!
//! The owner is `MACHINE/PID/START`: MACHINE a hash of the kernel's boot id
//! and the process's pid namespace (two containers of one host share the
//! boot id, not the namespace, so a pid means the same process only within
//! one), START the process's start time in clock ticks since boot (so that
//! a pid used again by a later process is not taken for the run). Linux
//! only: elsewhere there is no owner, and only the lease counts.

use sha2::{Digest, Sha256};

/// What can be said of an owner from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The process runs.
    Alive,
    /// Same machine, same pid namespace, and that process is gone.
    Dead,
    /// Another machine (or no owner recorded): the lease decides.
    Unknown,
}

/// This process, as an owner; `None` where `/proc` does not say.
pub fn this_process() -> Option<String> {
    let pid = std::process::id();
    Some(format!("{}/{pid}/{}", machine()?, start_ticks(pid)?))
}

/// Whether the process an owner names still runs.
pub fn liveness(owner: Option<&str>) -> Liveness {
    let Some(owner) = owner else {
        return Liveness::Unknown;
    };
    let mut parts = owner.split('/');
    let (Some(m), Some(pid), Some(start), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Liveness::Unknown;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return Liveness::Unknown;
    };
    if machine().as_deref() != Some(m) {
        return Liveness::Unknown;
    }
    match start_ticks(pid) {
        Some(t) if t == start => Liveness::Alive,
        _ => Liveness::Dead,
    }
}

/// This boot of this kernel and this pid namespace, hashed (the boot id
/// is no secret, but nothing needs it whole).
fn machine() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let h = Sha256::digest(format!("{} {}", boot.trim(), ns.display()).as_bytes());
    Some(h.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// Field 22 of `/proc/PID/stat`, the start time; the fields are counted
/// after the command name's closing parenthesis (the name may hold spaces
/// and parentheses itself).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, so start time (22) is the 20th.
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_dead() {
        let Some(me) = this_process() else { return };
        assert_eq!(liveness(Some(&me)), Liveness::Alive);
        // A child that has ended and been reaped: its pid names nobody
        // (or, reused, a process with another start time).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_ticks(pid);
        child.wait().unwrap();
        if let Some(start) = start {
            let owner = format!("{}/{pid}/{start}", machine().unwrap());
            assert_eq!(liveness(Some(&owner)), Liveness::Dead);
        }
        // The same pid with another start time is another process.
        let parts: Vec<&str> = me.split('/').collect();
        let other = format!("{}/{}/{}", parts[0], parts[1], 1);
        assert_eq!(liveness(Some(&other)), Liveness::Dead);
    }

    #[test]
    fn another_machine_or_no_owner_proves_nothing() {
        assert_eq!(liveness(None), Liveness::Unknown);
        assert_eq!(liveness(Some("0123456789abcdef/1/1")), Liveness::Unknown);
        assert_eq!(liveness(Some("not an owner")), Liveness::Unknown);
        assert_eq!(liveness(Some("a/b/c/d")), Liveness::Unknown);
    }
}
