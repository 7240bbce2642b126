//! From a release to running servers: blue/green deploys, rollbacks, the
//! security group and the kept address, all read back from the cloud.

pub mod address;
pub mod error;
#[cfg(test)]
mod fake;
pub mod fleet;
pub mod flow;
pub mod gc;
pub mod launch;
pub mod probe;
pub mod secgroup;
pub mod status;

pub use error::DeployError;
