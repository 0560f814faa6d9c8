//! The whole service on one machine, with embedded stand-ins for AWS: SQLite for DynamoDB and
//! an in-process workflow runner for Step Functions. `bcdi-hosting serve` wires them to the
//! same handlers the Lambdas run.

pub mod agent;
pub mod asl;
pub mod dev_keys;
pub mod server;
pub mod service;
pub mod sqlite;
pub mod storage;
pub mod workflows;
