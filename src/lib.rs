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
//! - [`base`]: base images in a content-addressed cache (download and
//!   verify, or build from Debian's archive).
//! - [`qemu`]: qemu-img, qemu-system, NoCloud seeds, serial consoles.
//! - [`build`]: the `Builder` trait, the QEMU builder with its readiness
//!   gate, artifacts, and `verify`.
//! - [`cloud`]: OpenStack access: clouds.yaml / openrc, a Keystone v3
//!   session, one trait per service (Glance, Nova) with its HTTP
//!   implementation. Knows nothing of workflows.
//! - [`release`]: Glance as the release store: publish, releases,
//!   promote, prune, generic over the `cloud` traits.
//! - [`run`]: executes a subcommand; [`output`]: prints its result as text
//!   or JSON; [`error`]: the user-facing error and its exit code.
//!
//! The engine (`model`, `compose`, `render`) never touches the network,
//! processes or clocks: the same inputs give byte-identical output.

pub mod base;
pub mod build;
pub mod cli;
pub mod cloud;
pub mod compose;
pub mod config;
pub mod error;
pub mod model;
pub mod output;
pub mod progress;
pub mod qemu;
pub mod release;
pub mod render;
pub mod run;
