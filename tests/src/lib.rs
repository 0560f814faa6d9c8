pub mod moto;
pub mod store_suite;
