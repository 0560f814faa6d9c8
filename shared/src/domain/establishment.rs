//! An establishment's hosting: its licence, its status and the history of its statuses.

use super::{Base, Digest, Griffe, Instant, LicenceCode, Rne, Status, Version};

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
    /// The same for the mounting workflow; 0 until the first upload is submitted.
    pub mounting_attempt: u32,
    pub failure: Option<Failure>,
    pub connection: Option<Connection>,
    /// The bases as last submitted or mounted.
    pub bases: Vec<Base>,
    /// The `seq` of the latest status event: every change of status is conditional on it, so
    /// two concurrent changes cannot both apply.
    pub event_seq: u32,
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
            mounting_attempt: 0,
            failure: None,
            connection: None,
            bases: Vec::new(),
            event_seq: 1,
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
            seq: self.event_seq,
            status: self.status,
            previous: None,
            at: self.status_changed_at,
        }
    }

    /// A change to `to` at `at`, if the contract allows it from the current status. The
    /// returned transition keeps the connection, bases and attempts, clears the failure and the
    /// next step; the caller sets what the new status needs before storing it.
    pub fn transition(&self, to: Status, at: Instant) -> Result<Transition, InvalidTransition> {
        if !self.status.can_become(to) {
            return Err(InvalidTransition {
                from: self.status,
                to,
            });
        }
        Ok(Transition {
            expected_seq: self.event_seq,
            event: StatusEvent {
                seq: self.event_seq + 1,
                status: to,
                previous: Some(self.status),
                at,
            },
            next_step_at: None,
            failure: None,
            connection: self.connection.clone(),
            bases: self.bases.clone(),
            provisioning_attempt: self.provisioning_attempt,
            mounting_attempt: self.mounting_attempt,
        })
    }

    /// The establishment after `transition`, as the store will hold it.
    pub fn apply(&mut self, transition: &Transition) {
        self.status = transition.event.status;
        self.status_changed_at = transition.event.at;
        self.event_seq = transition.event.seq;
        self.next_step_at = transition.next_step_at;
        self.failure = transition.failure.clone();
        self.connection = transition.connection.clone();
        self.bases = transition.bases.clone();
        self.provisioning_attempt = transition.provisioning_attempt;
        self.mounting_attempt = transition.mounting_attempt;
    }
}

/// A change of status ready to be stored: the establishment's new values and the event that
/// records the change. Stored only if the establishment's `event_seq` is still `expected_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub expected_seq: u32,
    pub event: StatusEvent,
    pub next_step_at: Option<Instant>,
    pub failure: Option<Failure>,
    pub connection: Option<Connection>,
    pub bases: Vec<Base>,
    pub provisioning_attempt: u32,
    pub mounting_attempt: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status {from} cannot become {to}")]
pub struct InvalidTransition {
    pub from: Status,
    pub to: Status,
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
