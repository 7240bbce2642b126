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
