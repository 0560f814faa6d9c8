//! The promises of `UploadStore`, written once and run against every adapter:
//! `uploads_suite!` turns each function below into one `#[tokio::test]` for a given store.

use std::sync::Arc;

use bcdi_shared::domain::{Instant, Rne, Secret};
use bcdi_shared::ports::{FileState, StoreError, UploadFile, UploadSession, UploadStore};

pub type Uploads = Arc<dyn UploadStore>;

/// One `#[tokio::test]` per function of this module, each on a new store from `$store` (an
/// async fn returning `Uploads`). A function added to the module must be listed here too.
#[macro_export]
macro_rules! uploads_suite {
    ($store:path) => {
        $crate::uploads_suite!(@each $store;
            a_session_is_found_by_its_token_only,
            a_token_is_stored_once,
            files_round_trip_oldest_first,
            files_of_one_establishment_are_invisible_to_another,
            the_limit_on_files_holds_and_frees_up_on_deletion,
            concurrent_additions_never_pass_the_limit,
            a_taken_file_id_is_refused,
            a_file_is_completed_once,
            a_complete_file_can_be_reopened_once,
            deleting_a_file_removes_it_and_deleting_an_absent_one_succeeds,
            marking_a_base_for_esidoc_unmarks_the_others,
            replacing_a_file_keeps_its_place_under_the_limit,
            a_replacement_of_a_changed_file_changes_nothing,
            one_file_at_a_time_uploads_under_a_name_and_base,
            a_file_is_removed_only_in_the_state_it_was_read_in,
        );
    };
    (@each $store:path; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::uploads_suite::$name($store().await).await;
            }
        )*
    };
}

pub fn rne(code: &str) -> Rne {
    Rne::parse(code).expect("a valid RNE")
}

/// A file of `code` in state uploading, created at `at` (Unix seconds).
pub fn file(code: &str, id: &str, at: i64) -> UploadFile {
    UploadFile {
        id: id.to_owned(),
        rne: rne(code),
        name: format!("{id} été.zip"),
        base: "Principale".to_owned(),
        size: 12 * 1024 * 1024 * 1024,
        part_size: 8 * 1024 * 1024,
        part_count: 1536,
        state: FileState::Uploading,
        upload_id: format!("upload-{id}"),
        created_at: Instant::from_unix(at),
        esidoc_export: false,
    }
}

pub async fn a_session_is_found_by_its_token_only(store: Uploads) {
    let token = Secret::generate("bcdi_upl");
    let session = UploadSession {
        rne: rne("0750655E"),
        expires_at: Instant::now().plus_seconds(3600),
    };
    store
        .create_session(&token.digest(), &session)
        .await
        .expect("the session is stored");
    assert_eq!(
        store.find_session(&token.digest()).await.expect("answers"),
        Some(session)
    );
    let other = Secret::generate("bcdi_upl");
    assert_eq!(
        store.find_session(&other.digest()).await.expect("answers"),
        None
    );
}

pub async fn a_token_is_stored_once(store: Uploads) {
    let token = Secret::generate("bcdi_upl");
    let first = UploadSession {
        rne: rne("0750655E"),
        expires_at: Instant::now().plus_seconds(3600),
    };
    store
        .create_session(&token.digest(), &first)
        .await
        .expect("the session is stored");
    let second = UploadSession {
        rne: rne("0750654D"),
        ..first.clone()
    };
    let again = store.create_session(&token.digest(), &second).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");
    assert_eq!(
        store.find_session(&token.digest()).await.expect("answers"),
        Some(first)
    );
}

pub async fn files_round_trip_oldest_first(store: Uploads) {
    let newer = file("0750655E", "newer", 200);
    let older = file("0750655E", "older", 100);
    store.add_file(&newer, 10).await.expect("added");
    store.add_file(&older, 10).await.expect("added");

    let files = store.files(&rne("0750655E")).await.expect("answers");
    assert_eq!(files, vec![older.clone(), newer]);
    assert_eq!(
        store
            .file(&rne("0750655E"), "older")
            .await
            .expect("answers"),
        Some(older)
    );
    assert_eq!(
        store
            .file(&rne("0750655E"), "absent")
            .await
            .expect("answers"),
        None
    );
}

pub async fn files_of_one_establishment_are_invisible_to_another(store: Uploads) {
    store
        .add_file(&file("0750655E", "mine", 100), 10)
        .await
        .expect("added");
    let other = rne("0750654D");
    assert_eq!(store.files(&other).await.expect("answers"), vec![]);
    assert_eq!(store.file(&other, "mine").await.expect("answers"), None);
    store.delete_file(&other, "mine").await.expect("answers");
    assert!(store
        .file(&rne("0750655E"), "mine")
        .await
        .expect("answers")
        .is_some());
}

pub async fn the_limit_on_files_holds_and_frees_up_on_deletion(store: Uploads) {
    for id in ["a", "b"] {
        store
            .add_file(&file("0750655E", id, 100), 2)
            .await
            .expect("added");
    }
    let third = store.add_file(&file("0750655E", "c", 100), 2).await;
    assert!(matches!(third, Err(StoreError::Conflict)), "{third:?}");
    assert_eq!(
        store.files(&rne("0750655E")).await.expect("answers").len(),
        2
    );

    // Another establishment has a limit of its own.
    store
        .add_file(&file("0750654D", "c", 100), 2)
        .await
        .expect("added");

    store
        .delete_file(&rne("0750655E"), "a")
        .await
        .expect("deleted");
    store
        .add_file(&file("0750655E", "c", 100), 2)
        .await
        .expect("added after a deletion");
}

pub async fn concurrent_additions_never_pass_the_limit(store: Uploads) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .add_file(&file("0750655E", &format!("f{i}"), i), 3)
                    .await
            })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        match task.await.expect("the task ran") {
            Ok(()) => added += 1,
            Err(StoreError::Conflict) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let files = store.files(&rne("0750655E")).await.expect("answers");
    assert!((1..=3).contains(&added), "{added} added");
    assert_eq!(files.len(), added);
}

pub async fn a_taken_file_id_is_refused(store: Uploads) {
    let first = file("0750655E", "same", 100);
    store.add_file(&first, 10).await.expect("added");
    let second = UploadFile {
        name: "other.zip".to_owned(),
        ..first.clone()
    };
    let again = store.add_file(&second, 10).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");
    assert_eq!(
        store.file(&rne("0750655E"), "same").await.expect("answers"),
        Some(first)
    );
}

pub async fn a_file_is_completed_once(store: Uploads) {
    store
        .add_file(&file("0750655E", "f", 100), 10)
        .await
        .expect("added");
    store
        .complete_file(&rne("0750655E"), "f")
        .await
        .expect("completed");
    let stored = store
        .file(&rne("0750655E"), "f")
        .await
        .expect("answers")
        .expect("still there");
    assert_eq!(stored.state, FileState::Complete);
    let again = store.complete_file(&rne("0750655E"), "f").await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    let absent = store.complete_file(&rne("0750655E"), "absent").await;
    assert!(matches!(absent, Err(StoreError::Conflict)), "{absent:?}");
}

pub async fn a_complete_file_can_be_reopened_once(store: Uploads) {
    let rne = rne("0750655E");
    store
        .add_file(&file("0750655E", "f", 100), 10)
        .await
        .expect("added");
    let uploading = store.reopen_file(&rne, "f").await;
    assert!(
        matches!(uploading, Err(StoreError::Conflict)),
        "{uploading:?}"
    );

    store.complete_file(&rne, "f").await.expect("completed");
    store.reopen_file(&rne, "f").await.expect("reopened");
    let stored = store
        .file(&rne, "f")
        .await
        .expect("answers")
        .expect("there");
    assert_eq!(stored.state, FileState::Uploading);
    let again = store.reopen_file(&rne, "f").await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    let absent = store.reopen_file(&rne, "absent").await;
    assert!(matches!(absent, Err(StoreError::Conflict)), "{absent:?}");
}

pub async fn deleting_a_file_removes_it_and_deleting_an_absent_one_succeeds(store: Uploads) {
    store
        .add_file(&file("0750655E", "f", 100), 10)
        .await
        .expect("added");
    store
        .delete_file(&rne("0750655E"), "f")
        .await
        .expect("deleted");
    assert_eq!(
        store.file(&rne("0750655E"), "f").await.expect("answers"),
        None
    );
    store
        .delete_file(&rne("0750655E"), "f")
        .await
        .expect("deleting again");
}

pub async fn marking_a_base_for_esidoc_unmarks_the_others(store: Uploads) {
    let marked = |id: &str, at: i64| UploadFile {
        esidoc_export: true,
        ..file("0750655E", id, at)
    };
    store
        .add_file(&marked("first", 100), 10)
        .await
        .expect("added");
    store
        .add_file(&marked("second", 200), 10)
        .await
        .expect("added");
    store
        .add_file(&file("0750655E", "third", 300), 10)
        .await
        .expect("added");

    let exported: Vec<(String, bool)> = store
        .files(&rne("0750655E"))
        .await
        .expect("answers")
        .into_iter()
        .map(|file| (file.id, file.esidoc_export))
        .collect();
    assert_eq!(
        exported,
        [
            ("first".to_owned(), false),
            ("second".to_owned(), true),
            ("third".to_owned(), false)
        ]
    );
}

pub async fn replacing_a_file_keeps_its_place_under_the_limit(store: Uploads) {
    for id in ["a", "b"] {
        store
            .add_file(&file("0750655E", id, 100), 2)
            .await
            .expect("added");
    }
    let mut new = file("0750655E", "c", 101);
    new.esidoc_export = true;
    store
        .replace_file(&file("0750655E", "a", 100), &new)
        .await
        .expect("replaced at the limit");
    let ids: Vec<_> = store
        .files(&rne("0750655E"))
        .await
        .expect("answers")
        .into_iter()
        .map(|file| (file.id, file.esidoc_export))
        .collect();
    assert_eq!(ids, [("b".to_owned(), false), ("c".to_owned(), true)]);

    // One out, one in: the count is what it was, neither more nor less.
    let more = store.add_file(&file("0750655E", "d", 102), 2).await;
    assert!(matches!(more, Err(StoreError::Conflict)), "{more:?}");
    for id in ["b", "c"] {
        store
            .delete_file(&rne("0750655E"), id)
            .await
            .expect("deleted");
    }
    for id in ["d", "e"] {
        store
            .add_file(&file("0750655E", id, 103), 2)
            .await
            .expect("two places free again");
    }
}

pub async fn a_replacement_of_a_changed_file_changes_nothing(store: Uploads) {
    for id in ["a", "b", "c"] {
        store
            .add_file(&file("0750655E", id, 100), 10)
            .await
            .expect("added");
    }
    store
        .complete_file(&rne("0750655E"), "b")
        .await
        .expect("completed");
    let before = store.files(&rne("0750655E")).await.expect("answers");

    // Gone, completed, another upload under the same id: each one is refused.
    let mut restarted = file("0750655E", "c", 100);
    restarted.upload_id = "another upload".to_owned();
    for (old, conflict) in [
        (file("0750655E", "gone", 100), true),
        (file("0750655E", "b", 100), true),
        (restarted, true),
        // The new file's id is taken.
        (file("0750655E", "a", 100), false),
    ] {
        let new = if conflict {
            file("0750655E", "new", 101)
        } else {
            file("0750655E", "c", 101)
        };
        let replaced = store.replace_file(&old, &new).await;
        if conflict {
            assert!(
                matches!(replaced, Err(StoreError::Conflict)),
                "{replaced:?}"
            );
        } else {
            assert!(
                matches!(replaced, Err(StoreError::AlreadyExists)),
                "{replaced:?}"
            );
        }
        assert_eq!(
            store.files(&rne("0750655E")).await.expect("answers"),
            before,
            "nothing changed"
        );
    }
}

pub async fn one_file_at_a_time_uploads_under_a_name_and_base(store: Uploads) {
    let named = |id: &str| UploadFile {
        name: "data.zip".to_owned(),
        ..file("0750655E", id, 100)
    };
    // Concurrent additions of the same name and base: one wins.
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let store = Arc::clone(&store);
            let file = named(&format!("f{i}"));
            tokio::spawn(async move { store.add_file(&file, 10).await })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        match task.await.expect("the task ran") {
            Ok(()) => added += 1,
            Err(StoreError::Conflict) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, 1);
    let files = store.files(&rne("0750655E")).await.expect("answers");
    assert_eq!(files.len(), 1);
    let first = files[0].clone();

    // Another base, or another establishment, is another name.
    let other_base = UploadFile {
        base: "Annexe".to_owned(),
        ..named("g")
    };
    store.add_file(&other_base, 10).await.expect("added");
    let elsewhere = UploadFile {
        name: "data.zip".to_owned(),
        ..file("0750654D", "h", 100)
    };
    store.add_file(&elsewhere, 10).await.expect("added");

    // A replacement takes the name over; the replaced file's name no longer blocks.
    let second = named("second");
    store.replace_file(&first, &second).await.expect("replaced");
    let again = store.add_file(&named("third"), 10).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");

    // Completed, the file frees its name; so does a removed one.
    store
        .complete_file(&rne("0750655E"), "second")
        .await
        .expect("completed");
    store
        .add_file(&named("third"), 10)
        .await
        .expect("the name is free once complete");
    store
        .delete_file(&rne("0750655E"), "third")
        .await
        .expect("deleted");
    store
        .add_file(&named("fourth"), 10)
        .await
        .expect("the name is free once removed");
    let ids: Vec<_> = store
        .files(&rne("0750655E"))
        .await
        .expect("answers")
        .into_iter()
        .map(|file| file.id)
        .collect();
    assert_eq!(ids, ["fourth", "g", "second"]);
}

pub async fn a_file_is_removed_only_in_the_state_it_was_read_in(store: Uploads) {
    for id in ["a", "b"] {
        store
            .add_file(&file("0750655E", id, 100), 2)
            .await
            .expect("added");
    }
    store
        .complete_file(&rne("0750655E"), "a")
        .await
        .expect("completed");

    // Read uploading, completed since: kept.
    let refused = store
        .delete_file_in(&rne("0750655E"), "a", FileState::Uploading)
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    assert_eq!(
        store.files(&rne("0750655E")).await.expect("answers").len(),
        2
    );

    // In the state read: removed, and counted out; absent: nothing to do.
    store
        .delete_file_in(&rne("0750655E"), "a", FileState::Complete)
        .await
        .expect("removed");
    store
        .delete_file_in(&rne("0750655E"), "a", FileState::Uploading)
        .await
        .expect("absent is fine");
    store
        .delete_file_in(&rne("0750655E"), "b", FileState::Uploading)
        .await
        .expect("removed");
    for id in ["c", "d"] {
        store
            .add_file(&file("0750655E", id, 100), 2)
            .await
            .expect("two places free again");
    }
}
