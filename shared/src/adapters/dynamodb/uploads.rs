//! Upload sessions and uploaded archives in the single table:
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | session | `UPLSESSION#<hex digest of the token>` | `SESSION` | `rne`, `expires_at`, `ttl` |
//! | file | `UPLOAD#<rne>` | `FILE#<id>` | `name`, `base`, `size`, `part_size`, `part_count`, `state`, `upload_id`, `created_at` |
//! | name of an uploading file | `UPLOAD#<rne>` | `NAME#<hex SHA-256 of name, NUL, base>` | `file_id` |
//! | establishment's uploads | `UPLOAD#<rne>` | `STATE` | `files` (how many), `esidoc_export` (a file id) |
//!
//! The `NAME#` item is put with an uploading file and goes when it completes or is removed, all
//! in the same transactions, so two requests never start the same file twice. (A file reopened
//! after a failed assembly gets none back: a rare duplicate then stays possible.)
//! Replacing an unfinished file by another of the same name is one transaction (old item out
//! on condition it is unchanged, new one in), so a refused replacement changes nothing.
//! Adding and removing a file updates the `STATE` item's count in the same transaction, so the
//! limit on files holds under concurrent requests; the exported base is one attribute there, so
//! marking one unmarks the others at once. A session keeps `ttl` (the table's time-to-live
//! attribute) a day past its expiry: until then an expired token is answered "expired", not
//! "unknown".

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use sha2::{Digest as _, Sha256};

use super::{
    conditional, corrupt, n, number, optional_string, request_error, s, string, unavailable,
    Cancelled, DynamoDbStore, Item,
};
use crate::domain::{Digest, Instant, Rne};
use crate::ports::{FileState, StoreError, UploadFile, UploadSession, UploadStore};

/// How long an expired session is kept, to tell its holder it expired.
const EXPIRED_SESSION_RETENTION_SECONDS: u64 = 24 * 3600;

fn session_pk(token: &Digest) -> String {
    format!("UPLSESSION#{}", token.to_hex())
}

fn uploads_pk(rne: &Rne) -> String {
    format!("UPLOAD#{rne}")
}

fn file_sk(id: &str) -> String {
    format!("FILE#{id}")
}

const STATE_SK: &str = "STATE";

/// `NAME#<hex SHA-256 of name, NUL, base>`: any name and base fit a sort key.
fn name_sk(name: &str, base: &str) -> String {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([0])
        .chain_update(base.as_bytes())
        .finalize();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("NAME#{hex}")
}

/// Keeps the name and base of an uploading file to itself: put with `attribute_not_exists`,
/// or, in a replacement, on condition that it names the replaced file (or none, as for files
/// added before these items existed).
fn name_put(table: &str, file: &UploadFile, replaced: Option<&str>) -> Result<Put, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .item("pk", s(uploads_pk(&file.rne)))
        .item("sk", s(name_sk(&file.name, &file.base)))
        .item("file_id", s(&file.id));
    match replaced {
        None => put.condition_expression("attribute_not_exists(pk)"),
        Some(old) => put
            .condition_expression("attribute_not_exists(pk) OR file_id = :old")
            .expression_attribute_values(":old", s(old)),
    }
    .build()
    .map_err(request_error)
}

/// Frees the name and base of `file`, which stops uploading, unless another file holds them.
fn name_delete(table: &str, file: &UploadFile) -> Result<Delete, StoreError> {
    Delete::builder()
        .table_name(table)
        .key("pk", s(uploads_pk(&file.rne)))
        .key("sk", s(name_sk(&file.name, &file.base)))
        .condition_expression("attribute_not_exists(pk) OR file_id = :id")
        .expression_attribute_values(":id", s(&file.id))
        .build()
        .map_err(request_error)
}

fn file_item(file: &UploadFile) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(uploads_pk(&file.rne))),
        ("sk".to_owned(), s(file_sk(&file.id))),
        ("rne".to_owned(), s(file.rne.as_str())),
        ("id".to_owned(), s(&file.id)),
        ("name".to_owned(), s(&file.name)),
        ("base".to_owned(), s(&file.base)),
        ("size".to_owned(), n(file.size)),
        ("part_size".to_owned(), n(file.part_size)),
        ("part_count".to_owned(), n(file.part_count)),
        ("state".to_owned(), s(file.state.as_str())),
        ("upload_id".to_owned(), s(&file.upload_id)),
        ("created_at".to_owned(), n(file.created_at.unix())),
    ])
}

fn file_from(item: &Item, exported: Option<&str>) -> Result<UploadFile, StoreError> {
    let id = string(item, "id")?.to_owned();
    Ok(UploadFile {
        rne: Rne::parse(string(item, "rne")?).map_err(|_| corrupt("`rne` is invalid"))?,
        name: string(item, "name")?.to_owned(),
        base: string(item, "base")?.to_owned(),
        size: number(item, "size")?,
        part_size: number(item, "part_size")?,
        part_count: number(item, "part_count")?,
        state: FileState::parse(string(item, "state")?)
            .ok_or_else(|| corrupt("`state` is invalid"))?,
        upload_id: string(item, "upload_id")?.to_owned(),
        created_at: Instant::from_unix(number(item, "created_at")?),
        esidoc_export: exported == Some(id.as_str()),
        id,
    })
}

impl DynamoDbStore {
    /// The id of the establishment's exported base, if one was marked.
    async fn exported(&self, rne: &Rne) -> Result<Option<String>, StoreError> {
        let item = self
            .get_item(uploads_pk(rne), STATE_SK, "upload state")
            .await?;
        Ok(match item {
            Some(item) => optional_string(&item, "esidoc_export")?.map(str::to_owned),
            None => None,
        })
    }
}

#[async_trait]
impl UploadStore for DynamoDbStore {
    async fn create_session(
        &self,
        token: &Digest,
        session: &UploadSession,
    ) -> Result<(), StoreError> {
        let ttl = session
            .expires_at
            .plus_seconds(EXPIRED_SESSION_RETENTION_SECONDS);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(session_pk(token)))
            .item("sk", s("SESSION"))
            .item("rne", s(session.rne.as_str()))
            .item("expires_at", n(session.expires_at.unix()))
            .item("ttl", n(ttl.unix()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|error| {
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception())
                {
                    StoreError::AlreadyExists
                } else {
                    unavailable("PutItem upload session", &error, &[])
                }
            })?;
        Ok(())
    }

    async fn find_session(&self, token: &Digest) -> Result<Option<UploadSession>, StoreError> {
        let session = self.get_item(session_pk(token), "SESSION", "upload session");
        let Some(item) = session.await? else {
            return Ok(None);
        };
        Ok(Some(UploadSession {
            rne: Rne::parse(string(&item, "rne")?).map_err(|_| corrupt("`rne` is invalid"))?,
            expires_at: Instant::from_unix(number(&item, "expires_at")?),
        }))
    }

    async fn files(&self, rne: &Rne) -> Result<Vec<UploadFile>, StoreError> {
        let items = self
            .query_prefix(uploads_pk(rne), "FILE#", "upload files")
            .await?;
        let exported = self.exported(rne).await?;
        let mut files = items
            .iter()
            .map(|item| file_from(item, exported.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        files.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(files)
    }

    async fn file(&self, rne: &Rne, id: &str) -> Result<Option<UploadFile>, StoreError> {
        let file = self.get_item(uploads_pk(rne), file_sk(id), "upload file");
        let Some(item) = file.await? else {
            return Ok(None);
        };
        let exported = self.exported(rne).await?;
        file_from(&item, exported.as_deref()).map(Some)
    }

    async fn add_file(&self, file: &UploadFile, max_files: usize) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(file_item(file)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(request_error)?;
        let mut set = "files = if_not_exists(files, :zero) + :one".to_owned();
        let mut count = Update::builder()
            .table_name(&self.table)
            .key("pk", s(uploads_pk(&file.rne)))
            .key("sk", s(STATE_SK))
            .condition_expression("attribute_not_exists(files) OR files < :max")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max_files));
        if file.esidoc_export {
            set.push_str(", esidoc_export = :id");
            count = count.expression_attribute_values(":id", s(&file.id));
        }
        let count = count
            .update_expression(format!("SET {set}"))
            .build()
            .map_err(request_error)?;
        let mut items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        if file.state == FileState::Uploading {
            let name = name_put(&self.table, file, None)?;
            items.push(TransactWriteItem::builder().put(name).build());
        }
        match self.transact("add_file", items, &[]).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition { first: true }) => Err(StoreError::AlreadyExists),
            Err(Cancelled::Condition { first: false }) | Err(Cancelled::Conflict) => {
                Err(StoreError::Conflict)
            }
            Err(Cancelled::Other(error)) => Err(error),
        }
    }

    async fn replace_file(&self, old: &UploadFile, new: &UploadFile) -> Result<(), StoreError> {
        // The old item goes only if it is still the same upload, uploading; the count of
        // files (the `STATE` item) is left as it is: one file out, one in.
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(uploads_pk(&old.rne)))
            .key("sk", s(file_sk(&old.id)))
            .condition_expression("#state = :uploading AND upload_id = :upload_id")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":uploading", s(FileState::Uploading.as_str()))
            .expression_attribute_values(":upload_id", s(&old.upload_id))
            .build()
            .map_err(request_error)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(file_item(new)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(request_error)?;
        let mut items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().put(put).build(),
        ];
        if name_sk(&old.name, &old.base) == name_sk(&new.name, &new.base) {
            let name = name_put(&self.table, new, Some(&old.id))?;
            items.push(TransactWriteItem::builder().put(name).build());
        } else {
            let freed = name_delete(&self.table, old)?;
            items.push(TransactWriteItem::builder().delete(freed).build());
            let name = name_put(&self.table, new, None)?;
            items.push(TransactWriteItem::builder().put(name).build());
        }
        if new.esidoc_export {
            let export = Update::builder()
                .table_name(&self.table)
                .key("pk", s(uploads_pk(&new.rne)))
                .key("sk", s(STATE_SK))
                .update_expression("SET esidoc_export = :id")
                .expression_attribute_values(":id", s(&new.id))
                .build()
                .map_err(request_error)?;
            items.push(TransactWriteItem::builder().update(export).build());
        }
        match self.transact("replace_file", items, &[]).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition { first: true }) | Err(Cancelled::Conflict) => {
                Err(StoreError::Conflict)
            }
            Err(Cancelled::Condition { first: false }) => {
                // The new id, or the name and base, taken meanwhile.
                match self.file(&new.rne, &new.id).await? {
                    Some(_) => Err(StoreError::AlreadyExists),
                    None => Err(StoreError::Conflict),
                }
            }
            Err(Cancelled::Other(error)) => Err(error),
        }
    }

    async fn complete_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        // Its name and base are freed with the change of state, in one transaction.
        let Some(file) = self.file(rne, id).await? else {
            return Err(StoreError::Conflict);
        };
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(uploads_pk(rne)))
            .key("sk", s(file_sk(id)))
            .update_expression("SET #state = :to")
            .condition_expression("#state = :from AND upload_id = :upload_id")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(FileState::Complete.as_str()))
            .expression_attribute_values(":from", s(FileState::Uploading.as_str()))
            .expression_attribute_values(":upload_id", s(&file.upload_id))
            .build()
            .map_err(request_error)?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder()
                .delete(name_delete(&self.table, &file)?)
                .build(),
        ];
        match self.transact("complete_file", items, &[]).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition { .. }) | Err(Cancelled::Conflict) => {
                Err(StoreError::Conflict)
            }
            Err(Cancelled::Other(error)) => Err(error),
        }
    }

    async fn reopen_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        self.set_file_state(rne, id, FileState::Complete, FileState::Uploading)
            .await
    }

    async fn delete_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        self.delete_file_item(rne, id, None).await
    }

    async fn delete_file_in(
        &self,
        rne: &Rne,
        id: &str,
        state: FileState,
    ) -> Result<(), StoreError> {
        self.delete_file_item(rne, id, Some(state)).await
    }
}

impl DynamoDbStore {
    /// Moves the file from state `from` to `to`; `Conflict` if it is not in `from`.
    async fn set_file_state(
        &self,
        rne: &Rne,
        id: &str,
        from: FileState,
        to: FileState,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(uploads_pk(rne)))
            .key("sk", s(file_sk(id)))
            .update_expression("SET #state = :to")
            .condition_expression("#state = :from")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":from", s(from.as_str()));
        conditional("UpdateItem upload file", update).await
    }

    /// Removes the file item (if in `state`, when given) and counts it out, in one transaction.
    async fn delete_file_item(
        &self,
        rne: &Rne,
        id: &str,
        state: Option<FileState>,
    ) -> Result<(), StoreError> {
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(uploads_pk(rne)))
            .key("sk", s(file_sk(id)));
        delete = match state {
            None => delete.condition_expression("attribute_exists(pk)"),
            Some(state) => delete
                .condition_expression("attribute_exists(pk) AND #state = :state")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":state", s(state.as_str())),
        };
        let delete = delete.build().map_err(request_error)?;
        let count = Update::builder()
            .table_name(&self.table)
            .key("pk", s(uploads_pk(rne)))
            .key("sk", s(STATE_SK))
            .update_expression("SET files = files - :one")
            .condition_expression("files > :zero")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(request_error)?;
        let mut items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        // An uploading file frees its name and base with it; a change of state meanwhile
        // fails the condition below, and the caller may try again.
        if let Some(file) = self.file(rne, id).await? {
            if file.state == FileState::Uploading {
                let freed = name_delete(&self.table, &file)?;
                items.push(TransactWriteItem::builder().delete(freed).build());
            }
        }
        match self.transact("delete_file", items, &[]).await {
            Ok(()) => Ok(()),
            // Already gone: what was asked holds; in another state: refused.
            Err(Cancelled::Condition { first: true }) => match state {
                Some(_) if self.file(rne, id).await?.is_some() => Err(StoreError::Conflict),
                _ => Ok(()),
            },
            Err(Cancelled::Condition { first: false }) | Err(Cancelled::Conflict) => {
                Err(StoreError::Conflict)
            }
            Err(Cancelled::Other(error)) => Err(error),
        }
    }
}
