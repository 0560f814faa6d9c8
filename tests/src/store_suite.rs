//! The promises of `EstablishmentStore`, written once and run against every adapter:
//! `store_suite!` turns each function below into one `#[tokio::test]` for a given store.

use std::sync::Arc;
use std::time::Duration;

use bcdi_shared::domain::establishment::{Connection, Failure};
use bcdi_shared::domain::{
    Base, BaseState, Digest, Establishment, Griffe, Instant, LicenceCode, NewEstablishment, Rne,
    Secret, Status, Version,
};
use bcdi_shared::ports::{EstablishmentStore, StoreError, WorkflowKind};
use tokio::sync::Barrier;

use crate::app::TestApp;

pub type Store = Arc<dyn EstablishmentStore>;

/// How many requests race in the concurrency tests.
const RACERS: usize = 20;

/// One `#[tokio::test]` per function of this module, each on a new store from `$store` (an
/// async fn returning a `Store`), and the failure test on a store from `$broken`, whose every
/// call fails. A function added to the module must be listed here too.
#[macro_export]
macro_rules! store_suite {
    ($store:path, $broken:path) => {
        $crate::store_suite!(@each $store;
            record_round_trips_every_field,
            record_without_optional_fields_round_trips,
            unknown_rne_is_absent,
            unknown_rne_has_empty_history,
            creation_records_the_first_event,
            each_key_finds_only_its_own_establishment,
            unknown_key_finds_nothing,
            creating_an_existing_rne_is_refused_and_changes_nothing,
            concurrent_creations_of_one_rne_create_one_record,
            replaced_key_stops_working_at_once,
            rekeying_changes_nothing_but_the_key,
            rekeying_from_a_stale_key_conflicts_and_changes_nothing,
            rekeying_an_unknown_rne_conflicts_and_creates_no_key,
            concurrent_rekeys_from_one_key_let_exactly_one_win,
            twenty_concurrent_rekeys_leave_exactly_one_valid_key,
            delete_unstarted_removes_record_key_and_history,
            deleted_rne_can_be_created_again,
            delete_unstarted_keeps_a_rekeyed_establishment,
            deleting_an_absent_establishment_succeeds,
            transition_changes_the_status_and_appends_an_event,
            transition_from_a_stale_seq_conflicts_and_changes_nothing,
            transition_of_an_unknown_rne_conflicts,
            concurrent_transitions_let_exactly_one_win,
            transition_keeps_the_key_and_clears_what_it_does_not_set,
            accepted_retries_keep_their_attempt_and_a_stale_one_conflicts,
            concurrent_retries_from_one_reading_let_exactly_one_win,
            each_retry_after_a_run_that_ended_unrecorded_starts_a_new_run,
            next_step_moves_only_in_the_expected_status,
            listing_by_status_pages_oldest_change_first,
            listing_refuses_a_cursor_it_did_not_hand_out,
            counting_by_status_counts_the_establishments_in_it_now,
        );

        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn failures_are_unavailable_and_reveal_no_secret() {
            $crate::store_suite::failures_are_unavailable_and_reveal_no_secret($broken().await)
                .await;
        }
    };
    (@each $store:path; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::store_suite::$name($store().await).await;
            }
        )*
    };
}

// Fixtures: real RNE codes, a licence with characters that quoting gets wrong, fixed instants.

pub const GRIFFE: &str = "Collège Jean-Moulin – CDI \"Les #Livres\" l'été";
pub const CODE: &str = "Zx9-ABCD-1234-ef";

/// 2025-12-03T12:00:00Z.
pub const CREATED_AT: i64 = 1_764_763_200;

pub fn rne(code: &str) -> Rne {
    Rne::parse(code).expect("a real RNE")
}

/// The digest of a key named `label`: distinct labels, distinct keys.
pub fn key(label: &str) -> Digest {
    Secret::from_presented(&format!("bcdi_est_test_{label}")).digest()
}

/// A new establishment in status `1`, as `POST /v1/establishments` creates it.
pub fn new_establishment(code: &str, key_label: &str) -> Establishment {
    let created = Instant::from_unix(CREATED_AT);
    Establishment::create(
        NewEstablishment {
            rne: rne(code),
            griffe: Griffe::parse(GRIFFE).expect("a valid griffe"),
            code: LicenceCode::parse(CODE).expect("a valid code"),
            version: Version::CollegeLycee,
            agricole: false,
        },
        key(key_label),
        created,
        created.plus_seconds(7200),
    )
}

/// An establishment with every optional field set and every field away from its default. No
/// real status has a failure and a connection at once: here each must be seen to round-trip.
pub fn establishment_with_every_field(code: &str, key_label: &str) -> Establishment {
    Establishment {
        rne: rne(code),
        griffe: Griffe::parse(GRIFFE).expect("a valid griffe"),
        code: LicenceCode::parse(CODE).expect("a valid code"),
        version: Version::Special,
        agricole: true,
        key_digest: key(key_label),
        status: Status::MountFailed,
        created_at: Instant::from_unix(CREATED_AT),
        status_changed_at: Instant::from_unix(CREATED_AT + 86_400 + 61),
        next_step_at: Some(Instant::from_unix(CREATED_AT + 90_000)),
        provisioning_attempt: 3,
        failure: Some(Failure {
            reason: "missing_notices_dat".to_owned(),
            detail: "The archive \"data.zip\" has no NOTICES.DAT; expected one per base."
                .to_owned(),
        }),
        connection: Some(Connection {
            host: "bcdi-0750655e.example.org".to_owned(),
            port: 40_001,
            client_download_url: "https://downloads.example.org/bcdi/client.exe?v=3&lang=fr"
                .to_owned(),
        }),
        mounting_attempt: 2,
        bases: vec![
            Base {
                id: "f-01".to_owned(),
                name: "Principale".to_owned(),
                state: BaseState::Installed,
                size: 104_857_600,
                esidoc_export: true,
                detail: None,
            },
            Base {
                id: "f-02".to_owned(),
                name: "Manuels « 2026 »".to_owned(),
                state: BaseState::Error,
                size: 7,
                esidoc_export: false,
                detail: Some("no NOTICES.DAT".to_owned()),
            },
        ],
        event_seq: 1,
    }
}

async fn must_create(store: &Store, establishment: &Establishment) {
    store
        .create(establishment)
        .await
        .expect("the establishment is created");
}

async fn stored(store: &Store, rne: &Rne) -> Option<Establishment> {
    store.get(rne).await.expect("the store answers")
}

async fn owner_of(store: &Store, key: &Digest) -> Option<Rne> {
    store.find_by_key(key).await.expect("the store answers")
}

fn is_race_lost(result: &Result<(), StoreError>) -> bool {
    matches!(
        result,
        Err(StoreError::AlreadyExists | StoreError::Conflict)
    )
}

/// Runs `RACERS` calls of `race(i)` at once, released together, and returns their results by `i`.
async fn race<F, Fut>(race: F) -> Vec<Result<(), StoreError>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let start = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let start = Arc::clone(&start);
            let call = race(i);
            tokio::spawn(async move {
                start.wait().await;
                call.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(RACERS);
    for task in tasks {
        results.push(task.await.expect("a racing task does not panic"));
    }
    results
}

fn single_winner(results: &[Result<(), StoreError>]) -> usize {
    let winners: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one call wins: {results:?}");
    for (i, result) in results.iter().enumerate() {
        assert!(
            result.is_ok() || is_race_lost(result),
            "call {i} lost the race with AlreadyExists or Conflict, not {result:?}"
        );
    }
    winners[0]
}

// The suite.

pub async fn record_round_trips_every_field(store: Store) {
    // Given an establishment whose every field differs from a fresh one's
    let establishment = establishment_with_every_field("9740787M", "every-field");

    // When it is stored and read back
    must_create(&store, &establishment).await;

    // Then every field is as it was written
    assert_eq!(
        stored(&store, &establishment.rne).await,
        Some(establishment)
    );
}

pub async fn record_without_optional_fields_round_trips(store: Store) {
    let mut establishment = new_establishment("0160010Z", "no-options");
    establishment.next_step_at = None;

    must_create(&store, &establishment).await;

    assert_eq!(
        stored(&store, &establishment.rne).await,
        Some(establishment)
    );
}

pub async fn unknown_rne_is_absent(store: Store) {
    must_create(&store, &new_establishment("0750655E", "neighbour")).await;

    assert_eq!(stored(&store, &rne("0750654D")).await, None);
}

pub async fn unknown_rne_has_empty_history(store: Store) {
    must_create(&store, &new_establishment("0750655E", "neighbour")).await;

    let history = store
        .history(&rne("0750654D"))
        .await
        .expect("the store answers");

    assert!(history.is_empty(), "{history:?}");
}

pub async fn creation_records_the_first_event(store: Store) {
    let establishment = establishment_with_every_field("0752526N", "first-event");

    must_create(&store, &establishment).await;

    let history = store
        .history(&establishment.rne)
        .await
        .expect("the store answers");
    assert_eq!(history, vec![establishment.first_event()]);
}

pub async fn each_key_finds_only_its_own_establishment(store: Store) {
    // Given two establishments
    let first = new_establishment("6200001G", "corsica-1");
    let second = new_establishment("6200002H", "corsica-2");
    must_create(&store, &first).await;
    must_create(&store, &second).await;

    // Then each key leads to its own establishment
    assert_eq!(owner_of(&store, &key("corsica-1")).await, Some(first.rne));
    assert_eq!(owner_of(&store, &key("corsica-2")).await, Some(second.rne));
}

pub async fn unknown_key_finds_nothing(store: Store) {
    must_create(&store, &new_establishment("7200009X", "known")).await;

    assert_eq!(owner_of(&store, &key("never-issued")).await, None);
}

pub async fn creating_an_existing_rne_is_refused_and_changes_nothing(store: Store) {
    // Given an establishment
    let original = new_establishment("0752538B", "original");
    must_create(&store, &original).await;

    // When the same RNE is created again with another key and licence
    let mut again = establishment_with_every_field("0752538B", "intruder");
    again.created_at = Instant::from_unix(CREATED_AT + 10);
    let result = store.create(&again).await;

    // Then it is refused, the record and history are the first ones, the new key opens nothing
    assert!(
        matches!(result, Err(StoreError::AlreadyExists)),
        "{result:?}"
    );
    assert_eq!(stored(&store, &original.rne).await, Some(original.clone()));
    assert_eq!(owner_of(&store, &key("intruder")).await, None);
    assert_eq!(
        owner_of(&store, &key("original")).await,
        Some(original.rne.clone())
    );
    let history = store
        .history(&original.rne)
        .await
        .expect("the store answers");
    assert_eq!(history, vec![original.first_event()]);
}

pub async fn concurrent_creations_of_one_rne_create_one_record(store: Store) {
    // Given twenty requests creating one RNE, each with a key of its own
    let rne = rne("9710002A");

    // When they all run at once
    let results = race(|i| {
        let store = Arc::clone(&store);
        async move {
            store
                .create(&new_establishment("9710002A", &format!("racer-{i}")))
                .await
        }
    })
    .await;

    // Then one wins; the record, the only working key and the single event are the winner's
    let winner = single_winner(&results);
    let record = stored(&store, &rne).await.expect("the winner's record");
    assert_eq!(record.key_digest, key(&format!("racer-{winner}")));
    for i in 0..RACERS {
        let expected = (i == winner).then(|| rne.clone());
        assert_eq!(
            owner_of(&store, &key(&format!("racer-{i}"))).await,
            expected,
            "key {i}"
        );
    }
    let history = store.history(&rne).await.expect("the store answers");
    assert_eq!(history, vec![record.first_event()]);
}

pub async fn replaced_key_stops_working_at_once(store: Store) {
    // Given an establishment with its first key
    let establishment = new_establishment("0750655E", "lost");
    must_create(&store, &establishment).await;

    // When the key is replaced
    store
        .replace_key(&establishment.rne, &key("lost"), &key("reissued"))
        .await
        .expect("the key is replaced");

    // Then the very next look-ups find the new key and not the old one
    assert_eq!(owner_of(&store, &key("lost")).await, None);
    assert_eq!(
        owner_of(&store, &key("reissued")).await,
        Some(establishment.rne.clone())
    );
    let record = stored(&store, &establishment.rne)
        .await
        .expect("still stored");
    assert_eq!(record.key_digest, key("reissued"));
}

pub async fn rekeying_changes_nothing_but_the_key(store: Store) {
    let establishment = establishment_with_every_field("0750654D", "before");
    must_create(&store, &establishment).await;

    store
        .replace_key(&establishment.rne, &key("before"), &key("after"))
        .await
        .expect("the key is replaced");

    let expected = Establishment {
        key_digest: key("after"),
        ..establishment.clone()
    };
    assert_eq!(stored(&store, &establishment.rne).await, Some(expected));
    let history = store
        .history(&establishment.rne)
        .await
        .expect("the store answers");
    assert_eq!(history, vec![establishment.first_event()]);
}

pub async fn rekeying_from_a_stale_key_conflicts_and_changes_nothing(store: Store) {
    // Given an establishment already re-keyed once
    let establishment = new_establishment("7200021K", "one");
    must_create(&store, &establishment).await;
    store
        .replace_key(&establishment.rne, &key("one"), &key("two"))
        .await
        .expect("the key is replaced");

    // When another request re-keys it from the key it read before
    let result = store
        .replace_key(&establishment.rne, &key("one"), &key("three"))
        .await;

    // Then it conflicts and only the current key works
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(
        owner_of(&store, &key("two")).await,
        Some(establishment.rne.clone())
    );
    assert_eq!(owner_of(&store, &key("three")).await, None);
    assert_eq!(owner_of(&store, &key("one")).await, None);
    let record = stored(&store, &establishment.rne)
        .await
        .expect("still stored");
    assert_eq!(record.key_digest, key("two"));
}

pub async fn rekeying_an_unknown_rne_conflicts_and_creates_no_key(store: Store) {
    let result = store
        .replace_key(&rne("9710003B"), &key("ghost"), &key("ghost-next"))
        .await;

    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(owner_of(&store, &key("ghost-next")).await, None);
    assert_eq!(stored(&store, &rne("9710003B")).await, None);
}

pub async fn concurrent_rekeys_from_one_key_let_exactly_one_win(store: Store) {
    // Given an establishment and twenty requests that all read its first key
    let establishment = new_establishment("0752526N", "shared");
    must_create(&store, &establishment).await;

    // When each replaces that key with its own, at once
    let results = race(|i| {
        let store = Arc::clone(&store);
        let rne = establishment.rne.clone();
        async move {
            store
                .replace_key(&rne, &key("shared"), &key(&format!("rekey-{i}")))
                .await
        }
    })
    .await;

    // Then one wins, and only its key works
    let winner = single_winner(&results);
    let record = stored(&store, &establishment.rne)
        .await
        .expect("still stored");
    assert_eq!(record.key_digest, key(&format!("rekey-{winner}")));
    assert_eq!(owner_of(&store, &key("shared")).await, None);
    for i in 0..RACERS {
        let expected = (i == winner).then(|| establishment.rne.clone());
        assert_eq!(
            owner_of(&store, &key(&format!("rekey-{i}"))).await,
            expected,
            "key {i}"
        );
    }
}

pub async fn twenty_concurrent_rekeys_leave_exactly_one_valid_key(store: Store) {
    // Given an establishment and twenty retried POSTs that each read the current key and
    // replace it, reading again after a conflict (what the creation handler does)
    let establishment = new_establishment("6200001G", "initial");
    must_create(&store, &establishment).await;

    // When they all run at once until each has replaced the key once
    let results = race(|i| {
        let store = Arc::clone(&store);
        let rne = establishment.rne.clone();
        async move {
            for attempt in 0..1_000u64 {
                let current = store.get(&rne).await?.expect("still stored").key_digest;
                match store
                    .replace_key(&rne, &current, &key(&format!("retry-{i}")))
                    .await
                {
                    Err(StoreError::Conflict) => {
                        tokio::time::sleep(Duration::from_millis(1 + (attempt * 7 + i as u64) % 5))
                            .await
                    }
                    outcome => return outcome,
                }
            }
            Err(StoreError::Conflict)
        }
    })
    .await;

    // Then all succeeded, and of the twenty-one keys issued exactly one works: the stored one
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let current = stored(&store, &establishment.rne)
        .await
        .expect("still stored")
        .key_digest;
    let mut working = Vec::new();
    for label in
        std::iter::once("initial".to_owned()).chain((0..RACERS).map(|i| format!("retry-{i}")))
    {
        if owner_of(&store, &key(&label)).await.is_some() {
            working.push(key(&label));
        }
    }
    assert_eq!(working, vec![current]);
}

pub async fn delete_unstarted_removes_record_key_and_history(store: Store) {
    // Given an establishment whose provisioning could not be started
    let establishment = new_establishment("9740787M", "unstarted");
    must_create(&store, &establishment).await;

    // When it is removed with the key it was created with
    store
        .delete_unstarted(&establishment.rne, &key("unstarted"))
        .await
        .expect("it is removed");

    // Then nothing of it is left
    assert_eq!(stored(&store, &establishment.rne).await, None);
    assert_eq!(owner_of(&store, &key("unstarted")).await, None);
    let history = store
        .history(&establishment.rne)
        .await
        .expect("the store answers");
    assert!(history.is_empty(), "{history:?}");
}

pub async fn deleted_rne_can_be_created_again(store: Store) {
    // Given an establishment removed after a failed start
    let first = new_establishment("0160010Z", "failed-start");
    must_create(&store, &first).await;
    store
        .delete_unstarted(&first.rne, &key("failed-start"))
        .await
        .expect("it is removed");

    // When the client's retry creates it anew
    let retry = new_establishment("0160010Z", "retried");
    must_create(&store, &retry).await;

    // Then the new record, key and single event are there, the old key opens nothing
    assert_eq!(stored(&store, &retry.rne).await, Some(retry.clone()));
    assert_eq!(
        owner_of(&store, &key("retried")).await,
        Some(retry.rne.clone())
    );
    assert_eq!(owner_of(&store, &key("failed-start")).await, None);
    let history = store.history(&retry.rne).await.expect("the store answers");
    assert_eq!(history, vec![retry.first_event()]);
}

pub async fn delete_unstarted_keeps_a_rekeyed_establishment(store: Store) {
    // Given an establishment re-keyed by a retried POST while its first request still runs
    let establishment = new_establishment("7200009X", "first-request");
    must_create(&store, &establishment).await;
    store
        .replace_key(
            &establishment.rne,
            &key("first-request"),
            &key("retried-request"),
        )
        .await
        .expect("the key is replaced");

    // When the first request, failing to start the provisioning, removes what it created
    let result = store
        .delete_unstarted(&establishment.rne, &key("first-request"))
        .await;

    // Then it conflicts and the establishment the retry answered for is still whole
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let expected = Establishment {
        key_digest: key("retried-request"),
        ..establishment.clone()
    };
    assert_eq!(stored(&store, &establishment.rne).await, Some(expected));
    assert_eq!(
        owner_of(&store, &key("retried-request")).await,
        Some(establishment.rne.clone())
    );
    let history = store
        .history(&establishment.rne)
        .await
        .expect("the store answers");
    assert_eq!(history, vec![establishment.first_event()]);
}

pub async fn deleting_an_absent_establishment_succeeds(store: Store) {
    let neighbour = new_establishment("0750655E", "neighbour");
    must_create(&store, &neighbour).await;

    let result = store
        .delete_unstarted(&rne("0750654D"), &key("anything"))
        .await;

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(stored(&store, &neighbour.rne).await, Some(neighbour));
}

/// `broken` is a store whose every call fails (its database or table is gone).
pub async fn failures_are_unavailable_and_reveal_no_secret(broken: Store) {
    let establishment = establishment_with_every_field("0752538B", "secret-key");
    let rne = &establishment.rne;
    let digest = key("secret-key");

    let failures = [
        ("create", broken.create(&establishment).await.err()),
        ("get", broken.get(rne).await.err()),
        ("find_by_key", broken.find_by_key(&digest).await.err()),
        (
            "replace_key",
            broken.replace_key(rne, &digest, &key("next")).await.err(),
        ),
        (
            "delete_unstarted",
            broken.delete_unstarted(rne, &digest).await.err(),
        ),
        ("history", broken.history(rne).await.err()),
    ];

    for (operation, error) in failures {
        let Some(StoreError::Unavailable(message)) = error else {
            panic!("{operation} is Unavailable, not {error:?}");
        };
        for secret in [GRIFFE, CODE, "secret-key", digest.to_hex().as_str()] {
            assert!(!message.contains(secret), "{operation}: {message}");
        }
    }
}

pub async fn transition_changes_the_status_and_appends_an_event(store: Store) {
    // Given a new establishment in status 1
    let mut establishment = new_establishment("0750655E", "transition");
    must_create(&store, &establishment).await;

    // When it becomes 2 with a connection host
    let at = Instant::from_unix(CREATED_AT + 600);
    let mut change = establishment.transition(Status::AwaitingBases, at).unwrap();
    change.connection = Some(Connection {
        host: "127.0.0.1".to_owned(),
        port: 41_000,
        client_download_url: "http://127.0.0.1/client".to_owned(),
    });
    store
        .transition(&establishment.rne, &change)
        .await
        .expect("the transition is stored");

    // Then the record is the establishment with the change applied, and the history has both
    establishment.apply(&change);
    assert_eq!(
        stored(&store, &establishment.rne).await,
        Some(establishment.clone())
    );
    let history = store.history(&establishment.rne).await.unwrap();
    let statuses: Vec<_> = history
        .iter()
        .map(|event| (event.seq, event.status, event.previous))
        .collect();
    assert_eq!(
        statuses,
        [
            (1, Status::Installing, None),
            (2, Status::AwaitingBases, Some(Status::Installing))
        ]
    );
    assert_eq!(history[1].at, at);
}

pub async fn transition_from_a_stale_seq_conflicts_and_changes_nothing(store: Store) {
    // Given an establishment that already moved from 1 to E1
    let establishment = new_establishment("0750654D", "stale");
    must_create(&store, &establishment).await;
    let at = Instant::from_unix(CREATED_AT + 60);
    let failed = establishment.transition(Status::InstallFailed, at).unwrap();
    store.transition(&establishment.rne, &failed).await.unwrap();
    let after_first = stored(&store, &establishment.rne).await;

    // When a change computed from the stale record (1 → 2) is stored
    let stale = establishment.transition(Status::AwaitingBases, at).unwrap();
    let result = store.transition(&establishment.rne, &stale).await;

    // Then it conflicts, and neither the record nor the history moved
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(stored(&store, &establishment.rne).await, after_first);
    assert_eq!(store.history(&establishment.rne).await.unwrap().len(), 2);
}

pub async fn transition_of_an_unknown_rne_conflicts(store: Store) {
    let ghost = new_establishment("0160010Z", "ghost");
    let change = ghost
        .transition(Status::AwaitingBases, Instant::from_unix(CREATED_AT))
        .unwrap();
    let result = store.transition(&ghost.rne, &change).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert!(
        store.history(&ghost.rne).await.unwrap().is_empty(),
        "no orphan event"
    );
}

pub async fn concurrent_transitions_let_exactly_one_win(store: Store) {
    // Given an establishment in status 1, and twenty workers that each saw it so
    let establishment = new_establishment("0752526N", "racing-transitions");
    must_create(&store, &establishment).await;

    // When they all store a change at once, half to 2 and half to E1
    let results = race(|i| {
        let store = Arc::clone(&store);
        let to = if i % 2 == 0 {
            Status::AwaitingBases
        } else {
            Status::InstallFailed
        };
        let change = establishment
            .transition(to, Instant::from_unix(CREATED_AT + i as i64))
            .unwrap();
        let rne = establishment.rne.clone();
        async move { store.transition(&rne, &change).await }
    })
    .await;

    // Then exactly one applied, and the history holds its event only
    let winner = single_winner(&results);
    let expected = if winner.is_multiple_of(2) {
        Status::AwaitingBases
    } else {
        Status::InstallFailed
    };
    assert_eq!(
        stored(&store, &establishment.rne).await.unwrap().status,
        expected
    );
    assert_eq!(store.history(&establishment.rne).await.unwrap().len(), 2);
}

pub async fn transition_keeps_the_key_and_clears_what_it_does_not_set(store: Store) {
    // Given an establishment in E2 with a failure, a connection and bases
    let establishment = establishment_with_every_field("0752538B", "clears");
    must_create(&store, &establishment).await;

    // When it goes back to 3 (the school uploads again) without a connection
    let mut change = establishment
        .transition(Status::Mounting, Instant::from_unix(CREATED_AT + 99_999))
        .unwrap();
    change.connection = None;
    change.mounting_attempt += 1;
    store.transition(&establishment.rne, &change).await.unwrap();

    // Then the failure and connection are gone, the rest kept, and the key still works
    let now = stored(&store, &establishment.rne).await.unwrap();
    assert_eq!(
        (now.failure, now.connection, now.next_step_at),
        (None, None, None)
    );
    assert_eq!(now.bases, establishment.bases);
    assert_eq!(now.mounting_attempt, 3);
    assert_eq!(
        owner_of(&store, &establishment.key_digest).await,
        Some(establishment.rne.clone())
    );
}

pub async fn next_step_moves_only_in_the_expected_status(store: Store) {
    let establishment = new_establishment("6200001G", "eta");
    must_create(&store, &establishment).await;
    let later = Instant::from_unix(CREATED_AT + 10_000);

    store
        .set_next_step_at(&establishment.rne, Status::Installing, later)
        .await
        .unwrap();
    assert_eq!(
        stored(&store, &establishment.rne)
            .await
            .unwrap()
            .next_step_at,
        Some(later)
    );

    let result = store
        .set_next_step_at(&establishment.rne, Status::Mounting, later.plus_seconds(1))
        .await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(
        stored(&store, &establishment.rne)
            .await
            .unwrap()
            .next_step_at,
        Some(later)
    );
    assert_eq!(
        store.history(&establishment.rne).await.unwrap().len(),
        1,
        "no event"
    );
}

pub async fn listing_by_status_pages_oldest_change_first(store: Store) {
    // Given five establishments in status 1, three of which failed at different times
    let codes = ["6200002H", "7200009X", "7200021K", "9710002A", "9710003B"];
    for (i, code) in codes.iter().enumerate() {
        let establishment = new_establishment(code, code);
        must_create(&store, &establishment).await;
        if i < 3 {
            let at = Instant::from_unix(CREATED_AT + 1_000 - i as i64 * 10);
            let change = establishment.transition(Status::InstallFailed, at).unwrap();
            store.transition(&establishment.rne, &change).await.unwrap();
        }
    }

    // When the failed ones are listed two at a time
    let first = store
        .list_by_status(Status::InstallFailed, None, 2)
        .await
        .unwrap();
    let cursor = first.next.clone().expect("a second page");
    let second = store
        .list_by_status(Status::InstallFailed, Some(&cursor), 2)
        .await
        .unwrap();

    // Then they come oldest change first, each once, and the listing ends
    let rnes = |page: &bcdi_shared::ports::Page| -> Vec<String> {
        page.items.iter().map(|e| e.rne.to_string()).collect()
    };
    assert_eq!(rnes(&first), ["7200021K", "7200009X"]);
    assert_eq!(rnes(&second), ["6200002H"]);
    assert!(second.next.is_none());
    let installing = store
        .list_by_status(Status::Installing, None, 10)
        .await
        .unwrap();
    assert_eq!(rnes(&installing), ["9710002A", "9710003B"]);
}

/// The gauges of the E1/E2 alarms: how many establishments are in a status now, not how many
/// entered it, so a retried establishment no longer counts.
pub async fn counting_by_status_counts_the_establishments_in_it_now(store: Store) {
    // Given four establishments in status 1, three of which failed, and one of those retried
    let codes = ["6200002H", "7200009X", "7200021K", "9710002A"];
    for (i, code) in codes.iter().enumerate() {
        let establishment = new_establishment(code, code);
        must_create(&store, &establishment).await;
        if i < 3 {
            let at = Instant::from_unix(CREATED_AT + 1_000 + i as i64);
            let change = establishment.transition(Status::InstallFailed, at).unwrap();
            store.transition(&establishment.rne, &change).await.unwrap();
        }
    }
    let failed = store.get(&rne(codes[0])).await.unwrap().expect("stored");
    let retry = failed
        .transition(Status::Installing, Instant::from_unix(CREATED_AT + 2_000))
        .unwrap();
    store.transition(&failed.rne, &retry).await.unwrap();

    // When each status is counted
    let mut counts = Vec::new();
    for status in Status::ALL {
        counts.push((status, store.count_by_status(status).await.unwrap()));
    }

    // Then each count is the establishments in that status now
    assert_eq!(
        counts,
        [
            (Status::Installing, 2),
            (Status::AwaitingBases, 0),
            (Status::Mounting, 0),
            (Status::Ready, 0),
            (Status::InstallFailed, 2),
            (Status::MountFailed, 0),
        ]
    );
}

pub async fn listing_refuses_a_cursor_it_did_not_hand_out(store: Store) {
    for cursor in ["not a cursor!", "", "%%%"] {
        let result = store
            .list_by_status(Status::InstallFailed, Some(cursor), 10)
            .await;
        assert!(
            matches!(result, Err(StoreError::InvalidCursor)),
            "{cursor:?}: {result:?}"
        );
    }
}

// Operators' retries: each accepted retry gets an attempt no run was named by before.

/// `establishment`'s installation fails: `1` → `E1`, attempt unchanged. Returns it as stored.
async fn fail_installation(store: &Store, establishment: &Establishment) -> Establishment {
    let at = Instant::from_unix(CREATED_AT + 60);
    let change = establishment
        .transition(Status::InstallFailed, at)
        .expect("1 → E1 is allowed");
    store
        .transition(&establishment.rne, &change)
        .await
        .expect("the failure is stored");
    stored(store, &establishment.rne)
        .await
        .expect("the establishment is still there")
}

pub async fn accepted_retries_keep_their_attempt_and_a_stale_one_conflicts(store: Store) {
    // Given an establishment whose installation failed, never retried
    let created = new_establishment("0750655E", "retried");
    must_create(&store, &created).await;
    let failed = fail_installation(&store, &created).await;
    let kind = WorkflowKind::Provisioning;
    assert_eq!(store.retried_attempt(&failed.rne, kind).await.unwrap(), 0);

    // When a retry is accepted as attempt 2, then (its run having ended before recording its
    // attempt) another as attempt 3
    store
        .accept_retry(&failed, kind, 0, 2)
        .await
        .expect("accepted");
    store
        .accept_retry(&failed, kind, 2, 3)
        .await
        .expect("accepted");

    // Then the last attempt is kept, for that workflow only, and the record is unchanged
    assert_eq!(store.retried_attempt(&failed.rne, kind).await.unwrap(), 3);
    let mounting = WorkflowKind::Mounting;
    assert_eq!(
        store.retried_attempt(&failed.rne, mounting).await.unwrap(),
        0
    );
    assert_eq!(stored(&store, &failed.rne).await, Some(failed.clone()));

    // And a retry that read an older counter conflicts, as does one that read the record
    // before a change of status, or an establishment that does not exist
    for retried in [0, 2] {
        let result = store
            .accept_retry(&failed, kind, retried, retried + 1)
            .await;
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    }
    let at = Instant::from_unix(CREATED_AT + 120);
    let installing = failed.transition(Status::Installing, at).unwrap();
    store.transition(&failed.rne, &installing).await.unwrap();
    let result = store.accept_retry(&failed, kind, 3, 4).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let unknown = new_establishment("0750654D", "unknown");
    let result = store.accept_retry(&unknown, kind, 0, 2).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(store.retried_attempt(&failed.rne, kind).await.unwrap(), 3);
    assert_eq!(store.retried_attempt(&unknown.rne, kind).await.unwrap(), 0);
}

pub async fn concurrent_retries_from_one_reading_let_exactly_one_win(store: Store) {
    // Given an establishment in E1, read once by twenty retries
    let created = new_establishment("0750655E", "retried");
    must_create(&store, &created).await;
    let failed = Arc::new(fail_installation(&store, &created).await);

    // When they all ask for attempt 2 at once
    let results = race(|_| {
        let store = Arc::clone(&store);
        let failed = Arc::clone(&failed);
        async move {
            store
                .accept_retry(&failed, WorkflowKind::Provisioning, 0, 2)
                .await
        }
    })
    .await;

    // Then exactly one is accepted
    single_winner(&results);
    let retried = store.retried_attempt(&failed.rne, WorkflowKind::Provisioning);
    assert_eq!(retried.await.unwrap(), 2);
}

pub async fn each_retry_after_a_run_that_ended_unrecorded_starts_a_new_run(store: Store) {
    // Given the service on this store, and an establishment whose installation failed
    let app = TestApp::spawn_with_store(Arc::clone(&store)).await;
    let rne = "0750655E";
    app.create(rne).await;
    let created = stored(&store, &Rne::parse(rne).unwrap()).await.unwrap();
    fail_installation(&store, &created).await;
    let path = format!("/v1/admin/establishments/{rne}/retry");
    let mut runs = vec![format!("{rne}-provisioning-1")];

    for attempt in 2..=4 {
        // When an operator retries, twice while the run has not moved the status yet
        for _ in 0..2 {
            let (status, body) = app
                .post(&path, Some(&app.operator_key), &serde_json::json!({}))
                .await;
            assert_eq!(status, 202, "{body}");
            assert_eq!(body["attempt"], attempt, "{body}");
        }

        // Then one new run is started, named by a new attempt
        runs.push(format!("{rne}-provisioning-{attempt}"));
        let mut started: Vec<String> = app.workflows.distinct_runs().into_iter().collect();
        started.sort();
        assert_eq!(started, runs);

        // When that run fails at its first step, before recording its attempt: the
        // establishment stays in E1 at attempt 1, and the run's name can never run again
        app.workflows.end_every_run();
        let now = stored(&store, &created.rne).await.unwrap();
        assert_eq!(
            (now.status, now.provisioning_attempt),
            (Status::InstallFailed, 1)
        );
    }
}
