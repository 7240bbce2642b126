//! ingot composes declarative layers into cloud-init user-data and into
//! versioned golden images.
//!
//! # Layout
//!
//! The data flows one way:
//!
//! - [`cli`]: clap arguments, no logic; [`config`]: arguments into typed
//!   inputs (image, layers folder, `--set`, secrets).
//! - [`model`]: layer and image files as serde types, loaded strictly, with
//!   file/line/column in errors. The engine's only I/O.
//! - [`compose`]: layer order, parameters, merge rules, conflicts, phases;
//!   pure.
//! - [`render`]: one cloud-config document per phase, the manifest and the
//!   input digest; pure.
//! - [`shell`]: the one quoting rule for every value that reaches a shell
//!   (a function and the tera filter `shell_quote`).
//! - [`base`]: base images in a content-addressed cache (download and
//!   verify, or build from Debian's archive).
//! - [`qemu`]: qemu-img, qemu-system, NoCloud seeds, serial consoles.
//! - [`manifest`]: `manifest.json`, the one typed record of an image that
//!   render writes, builders complete and every later stage reads;
//!   [`artifact`]: the artifact folder around it.
//! - [`protocol`]: the guest console protocol (`INGOT-BAKE-OK`, …): the
//!   lines the generated scripts print and the one parser every reader uses.
//! - [`build`]: builders, handed what the command layer rendered: the QEMU
//!   builder, the readiness gate and its console watch, and `verify`.
//! - [`cloud`]: OpenStack access: clouds.yaml / openrc, a Keystone v3
//!   session, one trait per service (Glance, Nova, Neutron) with its HTTP
//!   implementation. Knows nothing of workflows.
//! - [`release`]: Glance as the release store: publish, releases,
//!   promote, prune, generic over the `cloud` traits.
//! - [`deploy`]: a deployment's security group, synced to its public
//!   ports, and its kept address, generic over the `cloud` traits.
//! - [`run`]: executes a subcommand; [`output`]: prints its result as text
//!   or JSON; [`error`]: the user-facing error and its exit code.
//!
//! The engine (`model`, `compose`, `render`) never touches the network,
//! processes or clocks: the same inputs give byte-identical output.

pub mod artifact;
pub mod base;
pub mod build;
pub mod cli;
pub mod cloud;
pub mod compose;
pub mod config;
pub mod deploy;
pub mod error;
pub mod manifest;
pub mod model;
pub mod output;
pub mod progress;
pub mod protocol;
pub mod qemu;
pub mod release;
pub mod render;
pub mod run;
pub mod shell;
pub mod suggest;
