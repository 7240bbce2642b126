//! OpenStack access: which cloud and as whom ([`config`]), a Keystone v3
//! session that reuses its token and re-authenticates when it expires
//! ([`keystone`]), and one trait per service with its HTTP implementation
//! ([`image`] for Glance, [`compute`] for Nova, [`network`] for Neutron,
//! [`dns`] for Designate, [`volume`] for Cinder).
//!
//! This module knows nothing of workflows: `release` uses it, never the
//! reverse. Base URLs come from the Keystone catalog or from an explicit
//! `<type>_endpoint_override`; tests reach real services the same way.
//! Values a service spells as strings from a closed set are enums
//! ([`enums`]).

pub mod compute;
pub mod config;
pub mod dns;
pub mod enums;
mod error;
pub mod image;
pub mod keystone;
pub mod network;
mod request;
pub mod retry;
pub mod time;
pub mod volume;

pub use error::{CloudError, Invalid};
pub use keystone::Session;
