//! Upload sessions and uploaded archives in SQLite, with the promises of the DynamoDB adapter:
//! the limit on files and the uniqueness of an uploading file's name and base are checked and
//! the file added in one transaction.

use async_trait::async_trait;
use bcdi_shared::domain::{Digest, Instant, Rne};
use bcdi_shared::ports::{FileState, StoreError, UploadFile, UploadSession, UploadStore};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use super::{corrupt, unavailable, SqliteStore};

/// Created at every start. The exported base is a column of the establishment's row in
/// `upload_exports`, so marking one base unmarks the others at once.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS upload_sessions (
    token_digest    TEXT PRIMARY KEY,
    rne             TEXT NOT NULL,
    expires_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS upload_files (
    rne             TEXT NOT NULL,
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    base            TEXT NOT NULL,
    size            INTEGER NOT NULL,
    part_size       INTEGER NOT NULL,
    part_count      INTEGER NOT NULL,
    state           TEXT NOT NULL,
    upload_id       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (rne, id)
) STRICT;

CREATE TABLE IF NOT EXISTS upload_exports (
    rne             TEXT PRIMARY KEY,
    file_id         TEXT NOT NULL
) STRICT;
";

/// Sessions are kept this long past their expiry, to tell their holder they expired.
const EXPIRED_SESSION_RETENTION_SECONDS: i64 = 24 * 3600;

const SELECT_FILE: &str = "
SELECT f.rne, f.id, f.name, f.base, f.size, f.part_size, f.part_count, f.state, f.upload_id,
       f.created_at, e.file_id IS NOT NULL
FROM upload_files f
LEFT JOIN upload_exports e ON e.rne = f.rne AND e.file_id = f.id";

struct StoredFile {
    rne: String,
    id: String,
    name: String,
    base: String,
    size: i64,
    part_size: i64,
    part_count: i64,
    state: String,
    upload_id: String,
    created_at: i64,
    exported: bool,
}

impl StoredFile {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            rne: row.get(0)?,
            id: row.get(1)?,
            name: row.get(2)?,
            base: row.get(3)?,
            size: row.get(4)?,
            part_size: row.get(5)?,
            part_count: row.get(6)?,
            state: row.get(7)?,
            upload_id: row.get(8)?,
            created_at: row.get(9)?,
            exported: row.get(10)?,
        })
    }

    fn parse(self) -> Result<UploadFile, StoreError> {
        Ok(UploadFile {
            rne: Rne::parse(&self.rne).map_err(|_| corrupt("rne"))?,
            id: self.id,
            name: self.name,
            base: self.base,
            size: u64::try_from(self.size).map_err(|_| corrupt("size"))?,
            part_size: u64::try_from(self.part_size).map_err(|_| corrupt("part_size"))?,
            part_count: u32::try_from(self.part_count).map_err(|_| corrupt("part_count"))?,
            state: FileState::parse(&self.state).ok_or_else(|| corrupt("state"))?,
            upload_id: self.upload_id,
            created_at: Instant::from_unix(self.created_at),
            esidoc_export: self.exported,
        })
    }
}

fn to_i64(value: u64, column: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Unavailable(format!("SQLite: `{column}` too large")))
}

#[async_trait]
impl UploadStore for SqliteStore {
    async fn create_session(
        &self,
        token: &Digest,
        session: &UploadSession,
    ) -> Result<(), StoreError> {
        let connection = self.lock();
        // Sessions long expired are of no use to anyone: dropped as new ones come.
        connection
            .execute(
                "DELETE FROM upload_sessions WHERE expires_at < ?1",
                [Instant::now().unix() - EXPIRED_SESSION_RETENTION_SECONDS],
            )
            .map_err(unavailable)?;
        let inserted = connection
            .execute(
                "INSERT INTO upload_sessions (token_digest, rne, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (token_digest) DO NOTHING",
                params![
                    token.to_hex(),
                    session.rne.as_str(),
                    session.expires_at.unix()
                ],
            )
            .map_err(unavailable)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
        Ok(())
    }

    async fn find_session(&self, token: &Digest) -> Result<Option<UploadSession>, StoreError> {
        let connection = self.lock();
        let row: Option<(String, i64)> = connection
            .query_row(
                "SELECT rne, expires_at FROM upload_sessions WHERE token_digest = ?1",
                [token.to_hex()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(unavailable)?;
        row.map(|(rne, expires_at)| {
            Ok(UploadSession {
                rne: Rne::parse(&rne).map_err(|_| corrupt("rne"))?,
                expires_at: Instant::from_unix(expires_at),
            })
        })
        .transpose()
    }

    async fn files(&self, rne: &Rne) -> Result<Vec<UploadFile>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "{SELECT_FILE} WHERE f.rne = ?1 ORDER BY f.created_at, f.id"
            ))
            .map_err(unavailable)?;
        let rows = statement
            .query_map([rne.as_str()], StoredFile::read)
            .map_err(unavailable)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(unavailable)?;
        rows.into_iter().map(StoredFile::parse).collect()
    }

    async fn file(&self, rne: &Rne, id: &str) -> Result<Option<UploadFile>, StoreError> {
        let connection = self.lock();
        let row = connection
            .query_row(
                &format!("{SELECT_FILE} WHERE f.rne = ?1 AND f.id = ?2"),
                params![rne.as_str(), id],
                StoredFile::read,
            )
            .optional()
            .map_err(unavailable)?;
        row.map(StoredFile::parse).transpose()
    }

    async fn add_file(&self, file: &UploadFile, max_files: usize) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let (count, taken): (i64, bool) = transaction
            .query_row(
                "SELECT COUNT(*), COALESCE(MAX(id = ?2), 0) FROM upload_files WHERE rne = ?1",
                params![file.rne.as_str(), file.id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(unavailable)?;
        if taken {
            return Err(StoreError::AlreadyExists);
        }
        if usize::try_from(count).unwrap_or(usize::MAX) >= max_files
            || uploading_under_its_name(&transaction, file)?
        {
            return Err(StoreError::Conflict);
        }
        insert_file(&transaction, file)?;
        transaction.commit().map_err(unavailable)
    }

    async fn replace_file(&self, old: &UploadFile, new: &UploadFile) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let removed = transaction
            .execute(
                "DELETE FROM upload_files
                 WHERE rne = ?1 AND id = ?2 AND state = ?3 AND upload_id = ?4",
                params![
                    old.rne.as_str(),
                    old.id,
                    FileState::Uploading.as_str(),
                    old.upload_id
                ],
            )
            .map_err(unavailable)?;
        if removed == 0 {
            // Dropping the transaction rolls it back: nothing changed.
            return Err(StoreError::Conflict);
        }
        let taken: bool = transaction
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM upload_files WHERE rne = ?1 AND id = ?2)",
                params![new.rne.as_str(), new.id],
                |row| row.get(0),
            )
            .map_err(unavailable)?;
        if taken {
            return Err(StoreError::AlreadyExists);
        }
        if uploading_under_its_name(&transaction, new)? {
            return Err(StoreError::Conflict);
        }
        insert_file(&transaction, new)?;
        transaction.commit().map_err(unavailable)
    }

    async fn complete_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        self.set_file_state(rne, id, FileState::Uploading, FileState::Complete)
    }

    async fn reopen_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        self.set_file_state(rne, id, FileState::Complete, FileState::Uploading)
    }

    async fn delete_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        let connection = self.lock();
        connection
            .execute(
                "DELETE FROM upload_files WHERE rne = ?1 AND id = ?2",
                params![rne.as_str(), id],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete_file_in(
        &self,
        rne: &Rne,
        id: &str,
        state: FileState,
    ) -> Result<(), StoreError> {
        let connection = self.lock();
        let deleted = connection
            .execute(
                "DELETE FROM upload_files WHERE rne = ?1 AND id = ?2 AND state = ?3",
                params![rne.as_str(), id, state.as_str()],
            )
            .map_err(unavailable)?;
        if deleted == 0 {
            // Under the same lock: absent (fine) or in another state (refused).
            let present: bool = connection
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM upload_files WHERE rne = ?1 AND id = ?2)",
                    params![rne.as_str(), id],
                    |row| row.get(0),
                )
                .map_err(unavailable)?;
            if present {
                return Err(StoreError::Conflict);
            }
        }
        Ok(())
    }
}

/// Whether `file` is uploading while another file of its establishment uploads under the same
/// name and base: checked in the transaction that adds it, which SQLite runs alone.
fn uploading_under_its_name(
    transaction: &rusqlite::Transaction<'_>,
    file: &UploadFile,
) -> Result<bool, StoreError> {
    if file.state != FileState::Uploading {
        return Ok(false);
    }
    transaction
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM upload_files
                 WHERE rne = ?1 AND name = ?2 AND base = ?3 AND state = ?4)",
            params![
                file.rne.as_str(),
                file.name,
                file.base,
                FileState::Uploading.as_str()
            ],
            |row| row.get(0),
        )
        .map_err(unavailable)
}

/// Inserts `file` (and marks it exported if it says so) within `transaction`.
fn insert_file(
    transaction: &rusqlite::Transaction<'_>,
    file: &UploadFile,
) -> Result<(), StoreError> {
    transaction
        .execute(
            "INSERT INTO upload_files (rne, id, name, base, size, part_size, part_count,
                 state, upload_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                file.rne.as_str(),
                file.id,
                file.name,
                file.base,
                to_i64(file.size, "size")?,
                to_i64(file.part_size, "part_size")?,
                file.part_count,
                file.state.as_str(),
                file.upload_id,
                file.created_at.unix(),
            ],
        )
        .map_err(unavailable)?;
    if file.esidoc_export {
        transaction
            .execute(
                "INSERT INTO upload_exports (rne, file_id) VALUES (?1, ?2)
                 ON CONFLICT (rne) DO UPDATE SET file_id = excluded.file_id",
                params![file.rne.as_str(), file.id],
            )
            .map_err(unavailable)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Moves the file from state `from` to `to`; `Conflict` if it is not in `from`.
    fn set_file_state(
        &self,
        rne: &Rne,
        id: &str,
        from: FileState,
        to: FileState,
    ) -> Result<(), StoreError> {
        let connection = self.lock();
        let changed = connection
            .execute(
                "UPDATE upload_files SET state = ?3 WHERE rne = ?1 AND id = ?2 AND state = ?4",
                params![rne.as_str(), id, to.as_str(), from.as_str()],
            )
            .map_err(unavailable)?;
        if changed == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }
}
