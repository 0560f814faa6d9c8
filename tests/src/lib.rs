//! Helpers shared by the integration-test binaries.

pub mod app;
pub mod cases;
pub mod faults;
pub mod job_suite;
pub mod moto;
pub mod notification_suite;
pub mod service;
pub mod storage_suite;
pub mod store_suite;
pub mod uploads_suite;
