//! All integration tests, compiled into one binary (see Cargo.toml,
//! `autotests = false`): one module per concern.

mod base;
mod cli;
mod cloud;
mod common;
mod golden;
mod real_tools;
mod release_faults;
