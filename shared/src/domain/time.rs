//! Instants as the contract shows them: Unix seconds and RFC 3339 UTC, and the French wall
//! clock the schools read.

use std::fmt;

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Schools read times on the French mainland clock; the rules are compiled in, so nothing
/// depends on the host's time-zone database.
static PARIS: TimeZone = jiff::tz::get!("Europe/Paris");

/// A point in time with one-second resolution, the precision the contract exposes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(i64);

impl Instant {
    pub fn from_unix(seconds: i64) -> Self {
        Self(seconds)
    }

    pub fn now() -> Self {
        Self(Timestamp::now().as_second())
    }

    pub fn unix(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, seconds: u64) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)),
        )
    }

    fn timestamp(self) -> Timestamp {
        Timestamp::from_second(self.0).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// `2025-12-03T12:00:00Z`: jiff's own RFC 3339 form, which has no fraction for whole seconds
    /// (cheaper than interpreting a `strftime` pattern on every call: 2% of the server's CPU
    /// under the GET benchmark).
    pub fn rfc3339(self) -> String {
        self.timestamp().to_string()
    }

    pub fn parse_rfc3339(input: &str) -> Option<Self> {
        input.parse::<Timestamp>().ok().map(|t| Self(t.as_second()))
    }

    /// The French way to say when, seen from `now`: `vers 15 h 30`, or
    /// `le 4 décembre vers 9 h` for another day.
    pub fn french_around(self, now: Instant) -> String {
        const MONTHS: [&str; 12] = [
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ];
        let at = PARIS.to_datetime(self.timestamp());
        let today = PARIS.to_datetime(now.timestamp());
        let time = match at.minute() {
            0 => format!("{} h", at.hour()),
            minute => format!("{} h {minute:02}", at.hour()),
        };
        if at.date() == today.date() {
            format!("vers {time}")
        } else {
            let month = MONTHS[usize::try_from(at.month() - 1).unwrap_or(0)];
            format!("le {} {month} vers {time}", at.day())
        }
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_rfc3339_utc() {
        let instant = Instant::from_unix(1764770400);
        assert_eq!(instant.rfc3339(), "2025-12-03T14:00:00Z");
        assert_eq!(
            Instant::parse_rfc3339("2025-12-03T14:00:00Z"),
            Some(instant)
        );
        assert_eq!(
            Instant::parse_rfc3339("2025-12-03T15:00:00+01:00"),
            Some(instant)
        );
    }

    #[test]
    fn french_times_follow_the_paris_clock_in_winter_and_summer() {
        let winter_noon_utc = Instant::parse_rfc3339("2025-12-03T12:00:00Z").unwrap();
        let later = winter_noon_utc.plus_seconds(3 * 3600 + 30 * 60);
        assert_eq!(later.french_around(winter_noon_utc), "vers 16 h 30");

        let summer = Instant::parse_rfc3339("2026-06-15T07:00:00Z").unwrap();
        assert_eq!(summer.french_around(summer), "vers 9 h");
        assert_eq!(
            summer.plus_seconds(86_400).french_around(summer),
            "le 16 juin vers 9 h"
        );
    }
}
