//! The status of an establishment's hosting and the only transitions the contract allows.

use std::fmt;

use super::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Created; the BCDI server is being installed.
    Installing,
    /// Server installed; waiting for the school's bases.
    AwaitingBases,
    /// Bases uploaded; being checked and mounted.
    Mounting,
    /// Bases mounted; the server is ready.
    Ready,
    /// The installation failed (`E1`).
    InstallFailed,
    /// The uploaded bases could not be used (`E2`).
    MountFailed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Installing,
        Status::AwaitingBases,
        Status::Mounting,
        Status::Ready,
        Status::InstallFailed,
        Status::MountFailed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Status::Installing => "1",
            Status::AwaitingBases => "2",
            Status::Mounting => "3",
            Status::Ready => "4",
            Status::InstallFailed => "E1",
            Status::MountFailed => "E2",
        }
    }

    pub fn parse(code: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|status| status.code() == code)
            .ok_or_else(|| ParseError::new("must be one of 1, 2, 3, 4, E1, E2"))
    }

    /// The contract's transitions: 1→2, 1→E1, E1→1, 2→3, 3→4, 3→E2, E2→3, 4→3.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Installing, AwaitingBases)
                | (Installing, InstallFailed)
                | (InstallFailed, Installing)
                | (AwaitingBases, Mounting)
                | (Mounting, Ready)
                | (Mounting, MountFailed)
                | (MountFailed, Mounting)
                | (Ready, Mounting)
        )
    }

    /// Whether a next step is expected at a known time (`timestamp` is then not null).
    pub fn has_next_step(self) -> bool {
        matches!(self, Status::Installing | Status::Mounting)
    }

    /// Whether the school may upload bases in this status.
    pub fn accepts_uploads(self) -> bool {
        matches!(
            self,
            Status::AwaitingBases | Status::MountFailed | Status::Ready
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn only_the_contract_transitions_are_allowed() {
        let allowed = [
            (Installing, AwaitingBases),
            (Installing, InstallFailed),
            (InstallFailed, Installing),
            (AwaitingBases, Mounting),
            (Mounting, Ready),
            (Mounting, MountFailed),
            (MountFailed, Mounting),
            (Ready, Mounting),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from}→{to}"
                );
            }
        }
    }

    #[test]
    fn codes_round_trip() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.code()).unwrap(), status);
        }
        assert!(Status::parse("5").is_err());
        assert!(Status::parse("e1").is_err());
    }
}
