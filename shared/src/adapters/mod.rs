//! The AWS implementations of the ports.

pub mod dynamodb;
pub mod step_functions;
