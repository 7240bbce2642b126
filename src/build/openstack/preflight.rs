//! The preflight of cloud builds: everything the cloud can answer before
//! anything is created — the flavor exists and fits every image, the
//! network exists, the project's quota has room for the builds that run at
//! once, every base image is active and of the declared distro. Pure: the
//! facts are fetched by the caller; every problem is reported at once.

use crate::cloud::compute::{Flavor, Limits, Quota};
use crate::cloud::network::Network;
use std::fmt;

const GIB: u64 = 1024 * 1024 * 1024;

/// What one image needs from its build server.
#[derive(Debug, Clone)]
pub struct Demand {
    pub image: String,
    /// The release's `min_ram`: a smaller flavor could not run it either.
    pub min_ram_mb: u64,
    /// The base image's `min_disk` (GiB) and virtual size (bytes).
    pub base_min_disk_gb: u64,
    pub base_virtual_size: Option<u64>,
}

/// The flavor and network the builds use.
#[derive(Debug, Clone)]
pub struct Choice {
    pub flavor: Flavor,
    pub network: Network,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoFlavor,
    NoNetwork,
    UnknownFlavor {
        given: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    UnknownNetwork {
        given: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    DiskZero {
        flavor: String,
    },
    TooLittleRam {
        image: String,
        flavor: String,
        has: u64,
        needs: u64,
    },
    TooLittleDisk {
        image: String,
        flavor: String,
        has: u64,
        needs: u64,
    },
    Quota {
        what: &'static str,
        needs: u64,
        free: u64,
        limit: u64,
        builds: usize,
    },
    /// A base image problem, worded by the base resolution.
    Base {
        image: String,
        message: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |known: &[String]| {
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        };
        match self {
            Problem::NoFlavor => write!(
                f,
                "no flavor for the build servers: pass --flavor NAME (or set INGOT_BUILD_FLAVOR)"
            ),
            Problem::NoNetwork => write!(
                f,
                "no network for the build servers: pass --network NAME (or set INGOT_BUILD_NETWORK); the guest downloads its packages through it"
            ),
            Problem::UnknownFlavor {
                given,
                suggestion,
                known,
            } => {
                write!(f, "flavor `{given}` does not exist")?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                }
                write!(f, " Flavors: {}", list(known))
            }
            Problem::UnknownNetwork {
                given,
                suggestion,
                known,
            } => {
                write!(f, "network `{given}` does not exist (names are case-sensitive)")?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                }
                write!(f, " Networks: {}", list(known))
            }
            Problem::DiskZero { flavor } => write!(
                f,
                "flavor `{flavor}` has a 0 GB disk: its servers boot from a volume, which the openstack builder does not create yet; choose a flavor with a disk"
            ),
            Problem::TooLittleRam {
                image,
                flavor,
                has,
                needs,
            } => write!(
                f,
                "image {image}: flavor `{flavor}` has {has} MB of RAM, the image needs at least {needs} MB (its min_ram)"
            ),
            Problem::TooLittleDisk {
                image,
                flavor,
                has,
                needs,
            } => write!(
                f,
                "image {image}: flavor `{flavor}` has a {has} GB disk, the base image needs at least {needs} GB"
            ),
            Problem::Quota {
                what,
                needs,
                free,
                limit,
                builds,
            } => write!(
                f,
                "quota: {builds} build(s) at once need {needs} {what}, the project has {free} of {limit} free; lower --jobs or free some"
            ),
            Problem::Base { image, message } => write!(f, "image {image}: {message}"),
        }
    }
}

/// Finds a flavor or network by id or exact name.
fn find<'a, T>(
    items: &'a [T],
    given: &str,
    id: impl Fn(&T) -> &str,
    name: impl Fn(&T) -> &str,
) -> Option<&'a T> {
    items
        .iter()
        .find(|i| id(i) == given)
        .or_else(|| items.iter().find(|i| name(i) == given))
}

/// Checks the build servers' flavor, network and quota against every
/// image; `concurrent` builds run at once.
pub fn check(
    flavor: Option<&str>,
    network: Option<&str>,
    concurrent: usize,
    demands: &[Demand],
    flavors: &[Flavor],
    networks: &[Network],
    limits: &Limits,
) -> Result<Choice, Vec<Problem>> {
    let mut problems = Vec::new();
    let chosen_flavor = match flavor {
        None => {
            problems.push(Problem::NoFlavor);
            None
        }
        Some(given) => match find(flavors, given, |f| &f.id, |f| &f.name) {
            Some(f) => Some(f.clone()),
            None => {
                let mut known: Vec<String> = flavors.iter().map(|f| f.name.clone()).collect();
                known.sort();
                problems.push(Problem::UnknownFlavor {
                    given: given.to_string(),
                    suggestion: crate::suggest::did_you_mean(given, &known),
                    known,
                });
                None
            }
        },
    };
    let chosen_network = match network {
        None => {
            problems.push(Problem::NoNetwork);
            None
        }
        Some(given) => match find(networks, given, |n| &n.id, |n| &n.name) {
            Some(n) => Some(n.clone()),
            None => {
                let mut known: Vec<String> = networks.iter().map(|n| n.name.clone()).collect();
                known.sort();
                problems.push(Problem::UnknownNetwork {
                    given: given.to_string(),
                    suggestion: crate::suggest::did_you_mean(given, &known),
                    known,
                });
                None
            }
        },
    };
    if let Some(f) = &chosen_flavor {
        if f.disk_gb == 0 {
            problems.push(Problem::DiskZero {
                flavor: f.name.clone(),
            });
        }
        for d in demands {
            if f.ram_mb < d.min_ram_mb {
                problems.push(Problem::TooLittleRam {
                    image: d.image.clone(),
                    flavor: f.name.clone(),
                    has: f.ram_mb,
                    needs: d.min_ram_mb,
                });
            }
            let needs = d
                .base_min_disk_gb
                .max(d.base_virtual_size.map(|b| b.div_ceil(GIB)).unwrap_or(0));
            if f.disk_gb != 0 && f.disk_gb < needs {
                problems.push(Problem::TooLittleDisk {
                    image: d.image.clone(),
                    flavor: f.name.clone(),
                    has: f.disk_gb,
                    needs,
                });
            }
        }
        let builds = concurrent.min(demands.len()).max(1);
        let n = builds as u64;
        for (what, quota, each) in [
            ("instances", &limits.instances, 1),
            ("cores", &limits.cores, u64::from(f.vcpus)),
            ("MB of RAM", &limits.ram_mb, f.ram_mb),
        ] {
            if let Some(p) = short(what, quota, n * each, builds) {
                problems.push(p);
            }
        }
    }
    match (chosen_flavor, chosen_network) {
        (Some(flavor), Some(network)) if problems.is_empty() => Ok(Choice { flavor, network }),
        _ => Err(problems),
    }
}

fn short(what: &'static str, quota: &Quota, needs: u64, builds: usize) -> Option<Problem> {
    let limit = quota.max?;
    let free = limit.saturating_sub(quota.used);
    (free < needs).then_some(Problem::Quota {
        what,
        needs,
        free,
        limit,
        builds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(name: &str, vcpus: u32, ram_mb: u64, disk_gb: u64) -> Flavor {
        Flavor {
            id: format!("id-{name}"),
            name: name.into(),
            vcpus,
            ram_mb,
            disk_gb,
        }
    }

    fn network(name: &str) -> Network {
        Network {
            id: format!("id-{name}"),
            name: name.into(),
            status: "ACTIVE".into(),
            external: false,
            shared: false,
            subnets: vec![],
            tags: vec![],
        }
    }

    fn unlimited() -> Limits {
        let q = Quota { max: None, used: 0 };
        Limits {
            instances: q,
            cores: q,
            ram_mb: q,
        }
    }

    fn demand(image: &str, min_ram_mb: u64) -> Demand {
        Demand {
            image: image.into(),
            min_ram_mb,
            base_min_disk_gb: 0,
            base_virtual_size: Some(3 * GIB),
        }
    }

    fn flavors() -> Vec<Flavor> {
        vec![
            flavor("a2-ram4-disk20-perf1", 2, 4096, 20),
            flavor("a4-ram8-disk20-perf1", 4, 8192, 20),
            flavor("a2-ram4-disk0-perf1", 2, 4096, 0),
            flavor("tiny", 1, 512, 1),
        ]
    }

    fn messages(r: Result<Choice, Vec<Problem>>) -> Vec<String> {
        r.unwrap_err().iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_good_choice_passes() {
        let c = check(
            Some("a4-ram8-disk20-perf1"),
            Some("id-ext-net1"),
            2,
            &[demand("jitsi", 8192), demand("web", 1024)],
            &flavors(),
            &[network("ext-net1")],
            &unlimited(),
        )
        .unwrap();
        assert_eq!(c.flavor.name, "a4-ram8-disk20-perf1");
        assert_eq!(c.network.name, "ext-net1");
    }

    #[test]
    fn every_problem_at_once() {
        let m = messages(check(
            Some("a2-ram4-disk20-perf"),
            Some("Ext-net1"),
            1,
            &[demand("web", 1024)],
            &flavors(),
            &[network("ext-net1"), network("ext-floating1")],
            &unlimited(),
        ));
        assert_eq!(
            m,
            [
                "flavor `a2-ram4-disk20-perf` does not exist; did you mean `a2-ram4-disk20-perf1`? Flavors: a2-ram4-disk0-perf1, a2-ram4-disk20-perf1, a4-ram8-disk20-perf1, tiny",
                "network `Ext-net1` does not exist (names are case-sensitive); did you mean `ext-net1`? Networks: ext-floating1, ext-net1",
            ]
        );
    }

    #[test]
    fn a_flavor_too_small_or_without_disk() {
        let m = messages(check(
            Some("tiny"),
            Some("ext-net1"),
            1,
            &[demand("jitsi", 8192)],
            &flavors(),
            &[network("ext-net1")],
            &unlimited(),
        ));
        assert_eq!(
            m,
            [
                "image jitsi: flavor `tiny` has 512 MB of RAM, the image needs at least 8192 MB (its min_ram)",
                "image jitsi: flavor `tiny` has a 1 GB disk, the base image needs at least 3 GB",
            ]
        );
        let m = messages(check(
            Some("a2-ram4-disk0-perf1"),
            Some("ext-net1"),
            1,
            &[demand("web", 1024)],
            &flavors(),
            &[network("ext-net1")],
            &unlimited(),
        ));
        assert_eq!(m, ["flavor `a2-ram4-disk0-perf1` has a 0 GB disk: its servers boot from a volume, which the openstack builder does not create yet; choose a flavor with a disk"]);
    }

    #[test]
    fn quota_for_the_builds_that_run_at_once() {
        let limits = Limits {
            instances: Quota {
                max: Some(10),
                used: 9,
            },
            cores: Quota {
                max: Some(20),
                used: 0,
            },
            ram_mb: Quota {
                max: Some(16384),
                used: 8192,
            },
        };
        let m = messages(check(
            Some("a4-ram8-disk20-perf1"),
            Some("ext-net1"),
            4,
            &[demand("a", 1024), demand("b", 1024)],
            &flavors(),
            &[network("ext-net1")],
            &limits,
        ));
        assert_eq!(
            m,
            [
                "quota: 2 build(s) at once need 2 instances, the project has 1 of 10 free; lower --jobs or free some",
                "quota: 2 build(s) at once need 16384 MB of RAM, the project has 8192 of 16384 free; lower --jobs or free some",
            ]
        );
    }

    #[test]
    fn nothing_given() {
        let m = messages(check(None, None, 1, &[], &flavors(), &[], &unlimited()));
        assert_eq!(m.len(), 2);
        assert!(m[0].starts_with("no flavor for the build servers"));
        assert!(m[1].starts_with("no network for the build servers"));
    }
}
