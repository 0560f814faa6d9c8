//! Types that can only be built by parsing, and the rules between them. No I/O here.

pub mod base;
pub mod establishment;
pub mod licence;
pub mod rne;
pub mod secret;
pub mod status;
pub mod time;

pub use base::{Base, BaseState};
pub use establishment::{
    Connection, Establishment, Failure, InvalidTransition, NewEstablishment, StatusEvent,
    Transition,
};
pub use licence::{Griffe, LicenceCode, Version};
pub use rne::Rne;
pub use secret::{Digest, Secret};
pub use status::Status;
pub use time::Instant;

/// Why a value could not be parsed, in one English sentence for the `fields` of a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
