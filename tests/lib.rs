//! All integration tests, compiled into one binary (see Cargo.toml,
//! `autotests = false`): one module per concern.

mod base;
mod cli;
mod cloud;
mod cloud_build;
mod common;
mod deploy;
mod deploy_dns;
mod deploy_faults;
mod deploy_net;
mod dns;
mod golden;
mod hostile;
mod launch;
mod real_tools;
mod release_faults;
