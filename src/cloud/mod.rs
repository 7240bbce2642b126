//! OpenStack access: which cloud and as whom ([`config`]), a Keystone v3
//! session that reuses its token and re-authenticates when it expires
//! ([`keystone`]), and one trait per service with its HTTP implementation
//! ([`image`] for Glance, [`compute`] for Nova).
//!
//! This module knows nothing of workflows: `release` uses it, never the
//! reverse. Base URLs come from the Keystone catalog or from an explicit
//! `<type>_endpoint_override`; tests reach real services the same way.

pub mod compute;
pub mod config;
mod error;
pub mod image;
pub mod keystone;
pub mod retry;
pub mod time;

pub use error::CloudError;
pub use keystone::Session;
