//! Command-line arguments (clap). No logic: `config` turns these into what
//! the commands run on.

use clap::{ArgAction, Args, Parser, Subcommand, ValueHint};
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
    #[arg(long, global = true, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub layers: Option<PathBuf>,

    /// Cache of base images (default: $INGOT_CACHE, else ~/.cache/ingot).
    #[arg(long, global = true, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub cache: Option<PathBuf>,

    /// Where builds journal the cloud resources they create, so that `gc`
    /// finds them after a kill (default: $INGOT_STATE, else
    /// $XDG_STATE_HOME/ingot, else ~/.local/state/ingot).
    #[arg(long, global = true, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub state: Option<PathBuf>,

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
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        out: PathBuf,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Run every validation of an image; write nothing.
    Check {
        #[command(flatten)]
        input: ImageArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Obtain the base image an image file names into the cache: download
    /// and verify an official cloud image, or build Debian 12 from Debian's
    /// archive.
    Base {
        /// The image file whose base to obtain.
        #[arg(value_hint = ValueHint::FilePath)]
        image: PathBuf,
    },
    /// Build golden images: bake each in a guest (a local QEMU VM, or a
    /// temporary server in the cloud), gate it on readiness, keep it (an
    /// artifact folder, or a release in Glance). Unchanged inputs are not
    /// built again.
    Build {
        #[command(flatten)]
        input: BuildInputs,
        /// Where images are baked.
        #[arg(long, value_enum, default_value = "qemu")]
        builder: BuilderArg,
        /// Folder of artifacts (qemu builder).
        #[arg(long, value_name = "DIR", default_value = "artifacts", value_hint = ValueHint::DirPath)]
        artifacts: PathBuf,
        /// Build even when these inputs were built before.
        #[arg(long)]
        force: bool,
        /// Compression of the golden qcow2: zstd, zlib (for QEMU < 5.1) or none (qemu builder).
        #[arg(long, default_value = "zstd")]
        compression: crate::qemu::Compression,
        #[command(flatten)]
        gate: GateArgs,
        #[command(flatten)]
        vm: QemuArgs,
        #[command(flatten)]
        openstack: OpenStackArgs,
        /// Publish each artifact to Glance once built (qemu builder; see
        /// `ingot publish`). The openstack builder's images are releases
        /// already.
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
        #[arg(value_hint = ValueHint::DirPath)]
        artifact: PathBuf,
        /// When the image's layers declare state: the data disk to attach,
        /// a qcow2 file made blank if it does not exist and kept after
        /// verify, so that a second verify boots as the next server of a
        /// deployment does, on the state of the first (default: a blank
        /// throw-away disk).
        #[arg(long, value_name = "FILE", conflicts_with = "no_data_disk")]
        data_disk: Option<PathBuf>,
        /// Boot without a data disk: the instance must still boot, and say
        /// that its state is not kept.
        #[arg(long)]
        no_data_disk: bool,
        #[command(flatten)]
        gate: GateArgs,
        #[command(flatten)]
        vm: QemuArgs,
    },
    /// Run a release of the deployment's image (deployments/NAME.yaml):
    /// the first server, or blue/green — boot the new release beside the
    /// serving one, gate it on its first boot, then move the address and
    /// stop the old server. A failed gate never moves the address.
    Deploy(DeployArgs),
    /// Back to the previous release: the stopped previous server is
    /// started, gated and given the address; without one, the previous
    /// release is deployed.
    Rollback {
        /// The deployment (deployments/NAME.yaml, or a path).
        #[arg(value_hint = ValueHint::FilePath)]
        name: String,
        /// The version (or Glance id, or digest) to go back to.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// A YAML file of secret values, for a release that must boot anew.
        #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
        secrets: Option<PathBuf>,
        /// Seconds between two looks at the console.
        #[arg(long, default_value_t = 2, value_name = "SECONDS")]
        poll: u64,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// The deployment's servers as the cloud describes them: release,
    /// state, role, addresses; what serves now; its DNS record and whether
    /// the name resolves to the address.
    Status {
        /// The deployment (deployments/NAME.yaml, or a path).
        #[arg(value_hint = ValueHint::FilePath)]
        name: String,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Delete the deployment's servers and security group. The kept
    /// address stays unless --release-address, the DNS record unless
    /// --delete-dns.
    Destroy {
        /// The deployment (deployments/NAME.yaml, or a path).
        #[arg(value_hint = ValueHint::FilePath)]
        name: String,
        /// Release the kept floating IP too (DNS still points at it).
        #[arg(long)]
        release_address: bool,
        /// Delete the deployment's DNS record too (only the one ingot made).
        #[arg(long)]
        delete_dns: bool,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Boot one ad-hoc server from a release, to try the release: its boot
    /// rendered for this server, gated on its console. No address moves,
    /// no deployment file. `--delete NAME` deletes it.
    Launch(LaunchArgs),
    /// Find and delete what interrupted or killed builds left in the cloud
    /// (build servers and unfinished images, found by ingot's tags and
    /// metadata and by the local journal), and the servers of killed
    /// deploys and launches (candidates whose lease ended). Never touches
    /// anything ingot did not create, nor a server a floating IP points at.
    Gc {
        /// Show what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only what is older than this (e.g. 30m, 2h, 1d; 0 for everything).
        #[arg(long, value_name = "AGE", default_value = "1h")]
        older_than: String,
        /// Also delete what a build, deploy or launch that may still be
        /// running on another machine holds (its lease has not ended). The
        /// local journal already proves builds of this machine dead without
        /// this.
        #[arg(long)]
        ignore_leases: bool,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Upload an artifact to Glance as a release: properties, streamed
    /// upload, sha512 checked against Glance's. An artifact whose input
    /// digest is already published is not uploaded again.
    Publish {
        /// An artifact folder written by `ingot build`.
        #[arg(value_hint = ValueHint::DirPath)]
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
        #[arg(value_hint = ValueHint::FilePath)]
        image: String,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Point a channel at a release; promoting an older one rolls the
    /// channel back.
    Promote {
        /// The image's name (or its image file).
        #[arg(value_hint = ValueHint::FilePath)]
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
        #[arg(value_hint = ValueHint::FilePath)]
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
    /// Print a shell completion script on stdout, e.g.
    /// `ingot completions bash > ~/.local/share/bash-completion/completions/ingot`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: ingot's, or one subcommand's
    /// (`ingot man render | man -l -`); with --out, write every page into
    /// a folder (ingot.1, ingot-render.1, ...) as packagers install them.
    Man {
        /// The subcommand whose page to print.
        subcommand: Option<String>,
        /// Write ingot.1 and one page per subcommand into this folder.
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath, conflicts_with = "subcommand")]
        out: Option<PathBuf>,
    },
}

/// How `check` and `render` report errors.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How errors are printed: text on stderr (the default); json, one
    /// object per error and line on stdout; github, one GitHub Actions
    /// `::error` command per error on stdout, so that a pull request shows
    /// it on its line. The text still goes to stderr; exit codes are the same.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Github,
}

impl Cli {
    /// How errors are reported, and the image file they are reported
    /// against when they have no place of their own: text for the
    /// commands without `--format`.
    pub fn report(&self) -> (ReportFormat, Option<&std::path::Path>) {
        match &self.command {
            Command::Check { report, input } | Command::Render { report, input, .. } => {
                (report.format, Some(&input.image))
            }
            _ => (ReportFormat::Text, None),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuilderArg {
    /// A local QEMU guest; the image becomes an artifact folder.
    Qemu,
    /// A temporary server in the cloud; its snapshot becomes a release.
    Openstack,
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
pub struct DeployArgs {
    /// The deployment (deployments/NAME.yaml, or a path).
    #[arg(value_hint = ValueHint::FilePath)]
    pub name: String,
    /// Run this version instead of the file's release choice.
    #[arg(long, value_name = "VERSION", conflicts_with = "channel")]
    pub version: Option<String>,
    /// Run the release this channel points at.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// A YAML file of secret values (`name: value`); `INGOT_SECRET_<NAME>`
    /// environment variables are read too, the file wins.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub secrets: Option<PathBuf>,
    /// Keep a new server that failed its gate (for a look at it).
    #[arg(long)]
    pub keep_failed: bool,
    /// Seconds between two looks at the console.
    #[arg(long, default_value_t = 2, value_name = "SECONDS")]
    pub poll: u64,
    #[command(flatten)]
    pub cloud: CloudArgs,
}

/// `ingot launch`: what a deployment file would say, on the command line.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The image file (images/NAME.yaml), or NAME for images/NAME.yaml.
    #[arg(required_unless_present = "delete", value_hint = ValueHint::FilePath)]
    pub image: Option<String>,
    /// The release to run (default: the newest active release).
    #[arg(long, value_name = "VERSION", conflicts_with = "channel")]
    pub version: Option<String>,
    /// Run the release this channel points at.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// The server's name (lower-case letters, digits and `-`: it becomes
    /// the guest's hostname).
    #[arg(long, value_name = "NAME", required_unless_present = "delete")]
    pub name: Option<String>,
    /// Flavor, by name or id.
    #[arg(long, value_name = "FLAVOR", required_unless_present = "delete")]
    pub flavor: Option<String>,
    /// Network of the server's port, by name or id.
    #[arg(long, value_name = "NETWORK", required_unless_present = "delete")]
    pub network: Option<String>,
    /// A Nova key pair for SSH.
    #[arg(long, value_name = "KEY")]
    pub key_name: Option<String>,
    /// An existing security group for the server (repeatable; default:
    /// the project's `default`).
    #[arg(long = "security-group", value_name = "GROUP")]
    pub security_groups: Vec<String>,
    /// A YAML file of secret values (`name: value`); `INGOT_SECRET_<NAME>`
    /// environment variables are read too, the file wins.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub secrets: Option<PathBuf>,
    /// A value for this server's first boot: KEY=VALUE (repeatable; not
    /// for secrets; a value that would change the bake is refused).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Keep a server that failed its gate (for a look at it).
    #[arg(long)]
    pub keep_failed: bool,
    /// Seconds the first boot may take.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub boot_timeout: u64,
    /// Seconds between two looks at the console.
    #[arg(long, default_value_t = 2, value_name = "SECONDS")]
    pub poll: u64,
    /// Delete the server launched as NAME (only one ingot launched).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["image", "version", "channel", "name", "flavor", "network", "key_name", "security_groups", "secrets", "set", "keep_failed"])]
    pub delete: Option<String>,
    #[command(flatten)]
    pub cloud: CloudArgs,
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

/// How long a guest may take and what its result must be, for every
/// builder and for `verify`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Seconds before a guest that has not finished is stopped.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Accept cloud-init's "degraded" status (exit 2) instead of failing.
    #[arg(long)]
    pub allow_degraded: bool,
}

/// The local QEMU guest.
#[derive(Debug, Args)]
pub struct QemuArgs {
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
}

/// The build servers of the openstack builder.
#[derive(Debug, Args)]
pub struct OpenStackArgs {
    /// Flavor of the build servers, by name or id (openstack builder).
    #[arg(long, env = "INGOT_BUILD_FLAVOR", value_name = "FLAVOR")]
    pub flavor: Option<String>,
    /// Network of the build servers, by name or id; the guest needs its
    /// distribution's archive from there (openstack builder).
    #[arg(long, env = "INGOT_BUILD_NETWORK", value_name = "NETWORK")]
    pub network: Option<String>,
    /// Builds at once, each in its own server (openstack builder).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub jobs: usize,
    /// Seconds between two looks at a build server's console and state.
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    pub poll: u64,
}

/// One or more image files and the values they are rendered with.
#[derive(Debug, Args)]
pub struct BuildInputs {
    /// Image files, e.g. images/*.yaml.
    #[arg(required = true, value_name = "IMAGE", value_hint = ValueHint::FilePath)]
    pub images: Vec<PathBuf>,
    /// Override a parameter: KEY=VALUE (repeatable; not for secrets).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A YAML file of secret values (see `ingot render --help`); a build
    /// never needs one, the bake cannot see secrets.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub secrets: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The image file, e.g. images/jitsi-meet.yaml.
    #[arg(value_hint = ValueHint::FilePath)]
    pub image: PathBuf,
    /// Override a parameter: KEY=VALUE (repeatable; not for secrets).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A YAML file of secret values (`name: value`); `INGOT_SECRET_<NAME>`
    /// environment variables are read too, the file wins.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub secrets: Option<PathBuf>,
}
