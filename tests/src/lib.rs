//! Helpers shared by the integration-test binaries.

pub mod app;
pub mod moto;
pub mod store_suite;
