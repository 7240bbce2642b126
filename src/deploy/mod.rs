//! From a release to running servers: blue/green deploys, rollbacks, the
//! security group, the kept address and its DNS record, all read back
//! from the cloud.

pub mod address;
pub mod dns;
pub mod error;
#[cfg(test)]
mod fake;
pub mod fleet;
pub mod flow;
pub mod gc;
pub mod launch;
pub mod owner;
pub mod probe;
pub mod secgroup;
pub mod status;

pub use error::DeployError;
