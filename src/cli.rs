//! Command-line arguments (clap). No logic: `config` turns these into what
//! the commands run on.

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ingot",
    version,
    about = "Compose declarative layers into cloud-init user-data and golden images",
    after_help = "Exit codes: 0 ok, 2 invalid input, 1 any other failure."
)]
pub struct Cli {
    /// More logs on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Folder of layers (default: `layers` beside the image's folder, else ./layers).
    #[arg(long, global = true, value_name = "DIR")]
    pub layers: Option<PathBuf>,

    /// Cache of base images (default: $INGOT_CACHE, else ~/.cache/ingot).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List layers with their versions and parameters.
    Layers,
    /// Render the bake and boot user-data and the manifest into a folder.
    Render {
        #[command(flatten)]
        input: ImageArgs,
        /// Folder to write bake.user-data, boot.user-data and manifest.json into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run every validation of an image; write nothing.
    Check {
        #[command(flatten)]
        input: ImageArgs,
    },
    /// Obtain the base image an image file names into the cache: download
    /// and verify an official cloud image, or build Debian 12 from Debian's
    /// archive.
    Base {
        /// The image file whose base to obtain.
        image: PathBuf,
    },
    /// Build a golden image: bake it in a VM, gate it on readiness, write an
    /// artifact folder. Unchanged inputs are not built again.
    Build {
        #[command(flatten)]
        input: ImageArgs,
        /// Where the image is baked: `qemu` (local) or `openstack`.
        #[arg(long, default_value = "qemu")]
        builder: String,
        /// Folder of artifacts.
        #[arg(long, value_name = "DIR", default_value = "artifacts")]
        artifacts: PathBuf,
        /// Build even when an artifact with the same input digest exists.
        #[arg(long)]
        force: bool,
        /// Compression of the golden qcow2: zstd, zlib (for QEMU < 5.1) or none.
        #[arg(long, default_value = "zstd")]
        compression: crate::qemu::Compression,
        #[command(flatten)]
        vm: VmArgs,
        /// Publish the artifact to Glance once built (see `ingot publish`).
        #[arg(long)]
        publish: bool,
        #[command(flatten)]
        publish_args: PublishArgs,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Boot a built artifact as a new instance and check it from outside.
    Verify {
        /// An artifact folder written by `ingot build`.
        artifact: PathBuf,
        #[command(flatten)]
        vm: VmArgs,
    },
    /// Upload an artifact to Glance as a release: properties, streamed
    /// upload, sha512 checked against Glance's. An artifact whose input
    /// digest is already published is not uploaded again.
    Publish {
        /// An artifact folder written by `ingot build`.
        artifact: PathBuf,
        #[command(flatten)]
        publish_args: PublishArgs,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// List the releases of an image in Glance: versions, dates, digests,
    /// sizes, status, channels and the servers using each.
    Releases {
        /// The image's name (or its image file).
        image: String,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Point a channel at a release; promoting an older one rolls the
    /// channel back.
    Promote {
        /// The image's name (or its image file).
        image: String,
        /// The release: its version, a digest prefix or its Glance id.
        version: String,
        /// The channel, e.g. stable.
        #[arg(long)]
        channel: String,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Delete old releases, keeping the newest N and every release a
    /// channel points to or a server uses.
    Prune {
        /// The image's name (or its image file).
        image: String,
        /// How many of the newest active releases to keep.
        #[arg(long)]
        keep: usize,
        /// Show what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        cloud: CloudArgs,
    },
}

/// Which cloud, as the OpenStack tools choose it: `--os-cloud` or
/// `OS_CLOUD` names a cloud in clouds.yaml; without either, the `OS_*`
/// variables of an openrc file.
#[derive(Debug, Args)]
pub struct CloudArgs {
    /// A cloud in clouds.yaml (default: $OS_CLOUD).
    #[arg(long = "os-cloud", value_name = "NAME")]
    pub os_cloud: Option<String>,
    /// The region of the catalog's endpoints (default: $OS_REGION_NAME, else clouds.yaml).
    #[arg(long = "os-region-name", value_name = "REGION")]
    pub region: Option<String>,
    /// public, internal or admin endpoints (default: $OS_INTERFACE, else public).
    #[arg(long = "os-interface", value_name = "INTERFACE")]
    pub interface: Option<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Glance visibility of a new release.
    #[arg(long, default_value = "private", value_parser = ["private", "shared", "community", "public"])]
    pub visibility: String,
    /// Attempts in all for an upload cut by a transient error.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub attempts: u32,
}

#[derive(Debug, Args)]
pub struct VmArgs {
    /// QEMU accelerator: tcg (always works) or kvm (fast, where KVM works).
    #[arg(long, env = "INGOT_ACCEL", default_value = "tcg")]
    pub accel: crate::qemu::Accel,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Guest CPU model, e.g. host under kvm (default: QEMU's own).
    #[arg(long, value_name = "MODEL")]
    pub cpu: Option<String>,
    /// Seconds before a VM that has not finished is stopped.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Accept cloud-init's "degraded" status (exit 2) instead of failing.
    #[arg(long)]
    pub allow_degraded: bool,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The image file, e.g. images/jitsi-meet.yaml.
    pub image: PathBuf,
    /// Override a parameter: KEY=VALUE (repeatable; not for secrets).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A YAML file of secret values (`name: value`); INGOT_SECRET_<NAME>
    /// environment variables are read too, the file wins.
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
}
