//! All integration tests, compiled into one binary (see Cargo.toml,
//! `autotests = false`): one module per concern.

mod annotations;
mod base;
mod cli;
mod cloud;
mod cloud_build;
mod common;
mod completions;
mod deploy;
mod deploy_dns;
mod deploy_faults;
mod deploy_net;
mod dns;
mod golden;
mod hostile;
mod launch;
mod man;
mod real_tools;
mod release_faults;
mod state;
mod volume;
