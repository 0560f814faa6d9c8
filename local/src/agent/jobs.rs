//! What the agent is asked to do, read from a claimed job's input, and how a job fails.
//!
//! The agent is lenient with fields it does not know (a newer API may add some) and strict with
//! the ones it uses: the RNE becomes a directory name, so it must parse as an RNE.

use std::fmt;
use std::path::PathBuf;

use bcdi_shared::domain::Rne;
use serde_json::Value;

use super::client::ClaimedJob;

/// Why a job failed: a snake_case reason for the workflow and an English detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: &str, detail: impl Into<String>) -> Self {
        Self {
            reason: reason.to_owned(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// A licence secret or a presigned URL: handed to whoever needs it, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An install job: set up a BCDI server for one establishment.
#[derive(Debug, Clone)]
pub struct InstallJob {
    pub id: String,
    pub rne: Rne,
    pub griffe: Sensitive,
    pub code: Sensitive,
    /// `CL` or `SP`.
    pub version: String,
    pub agricole: bool,
    /// `<work dir>/<RNE>`, created before the command runs.
    pub work_dir: PathBuf,
}

/// One base archive of a mount job.
#[derive(Debug, Clone)]
pub struct BaseToMount {
    /// The base's name, as the school gave it (`Principale`).
    pub name: String,
    /// The uploaded file's name (`data.zip`).
    pub file: String,
    pub size: u64,
    pub url: Sensitive,
}

/// A mount job: put the uploaded bases in place and serve them.
#[derive(Debug, Clone)]
pub struct MountJob {
    pub id: String,
    pub rne: Rne,
    pub work_dir: PathBuf,
    pub bases: Vec<BaseToMount>,
}

/// A base downloaded, checked and extracted, ready for the mount command.
#[derive(Debug, Clone)]
pub struct PreparedBase {
    pub name: String,
    pub file: String,
    pub size: u64,
    /// The folder holding its files, `NOTICES.DAT` at its top.
    pub dir: PathBuf,
    pub files: u64,
    pub uncompressed_bytes: u64,
}

fn bad_input(what: &str) -> Failure {
    Failure::new(
        "invalid_job",
        format!("The job's input has no valid {what}."),
    )
}

fn rne(job: &ClaimedJob) -> Result<Rne, Failure> {
    let text = job
        .input
        .get("rne")
        .and_then(Value::as_str)
        .unwrap_or(&job.rne);
    Rne::parse(text).map_err(|_| bad_input("rne"))
}

fn text(input: &Value, name: &str) -> Result<String, Failure> {
    input
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad_input(name))
}

impl InstallJob {
    pub fn parse(job: &ClaimedJob, work_root: &std::path::Path) -> Result<Self, Failure> {
        let rne = rne(job)?;
        let input = &job.input;
        Ok(Self {
            id: job.id.clone(),
            work_dir: work_root.join(rne.as_str()),
            rne,
            griffe: Sensitive(text(input, "griffe")?),
            code: Sensitive(text(input, "code")?),
            version: text(input, "version")?,
            agricole: input
                .get("agricole")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

impl MountJob {
    pub fn parse(job: &ClaimedJob, work_root: &std::path::Path) -> Result<Self, Failure> {
        let rne = rne(job)?;
        let items = job
            .input
            .get("bases")
            .and_then(Value::as_array)
            .filter(|items| !items.is_empty())
            .ok_or_else(|| bad_input("bases"))?;
        let bases = items
            .iter()
            .map(|item| {
                Ok(BaseToMount {
                    name: text(item, "name")?,
                    file: text(item, "file").unwrap_or_default(),
                    size: item
                        .get("size")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| bad_input("base size"))?,
                    url: Sensitive(text(item, "url")?),
                })
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        Ok(Self {
            id: job.id.clone(),
            work_dir: work_root.join(rne.as_str()),
            rne,
            bases,
        })
    }
}
