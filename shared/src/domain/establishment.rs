//! An establishment's hosting: its licence, its status and the history of its statuses.

use super::{Digest, Griffe, Instant, LicenceCode, Rne, Status, Version};

/// What the Cyberlibrairie asks for when it creates a hosting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEstablishment {
    pub rne: Rne,
    pub griffe: Griffe,
    pub code: LicenceCode,
    pub version: Version,
    pub agricole: bool,
}

/// Why an establishment is in `E1` or `E2`: a stable snake_case reason and an English detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub detail: String,
}

/// How the school's BCDI client reaches its server, once the bases are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    pub client_download_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Establishment {
    pub rne: Rne,
    pub griffe: Griffe,
    pub code: LicenceCode,
    pub version: Version,
    pub agricole: bool,
    pub key_digest: Digest,
    pub status: Status,
    pub created_at: Instant,
    pub status_changed_at: Instant,
    /// When the next step is expected; set only in statuses that have one.
    pub next_step_at: Option<Instant>,
    /// How many provisioning workflows were started: names the next one, so that a duplicate
    /// start of the same attempt is refused by the workflow engine.
    pub provisioning_attempt: u32,
    pub failure: Option<Failure>,
    pub connection: Option<Connection>,
}

impl Establishment {
    /// A new establishment in status `1`, its installation expected at `ready_at`.
    pub fn create(
        new: NewEstablishment,
        key_digest: Digest,
        now: Instant,
        ready_at: Instant,
    ) -> Self {
        Self {
            rne: new.rne,
            griffe: new.griffe,
            code: new.code,
            version: new.version,
            agricole: new.agricole,
            key_digest,
            status: Status::Installing,
            created_at: now,
            status_changed_at: now,
            next_step_at: Some(ready_at),
            provisioning_attempt: 1,
            failure: None,
            connection: None,
        }
    }

    /// Whether a repeated creation request is the same request (a retry) or a different one.
    pub fn has_licence_of(&self, new: &NewEstablishment) -> bool {
        self.griffe == new.griffe
            && self.code == new.code
            && self.version == new.version
            && self.agricole == new.agricole
    }

    /// The event that records this establishment's current status.
    pub fn first_event(&self) -> StatusEvent {
        StatusEvent {
            seq: 1,
            status: self.status,
            previous: None,
            at: self.status_changed_at,
        }
    }
}

/// One change of status, as stored and notified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// 1 for the creation, then one more per change: orders the history and names the event.
    pub seq: u32,
    pub status: Status,
    pub previous: Option<Status>,
    pub at: Instant,
}
