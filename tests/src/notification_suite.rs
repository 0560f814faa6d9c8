//! The promises of `NotificationStore`, written once and run against every adapter:
//! `notification_suite!` turns each function below into one `#[tokio::test]` for a given store.
//! The store is also an `EstablishmentStore`: its status events are the notifications.

use std::sync::Arc;

use bcdi_shared::domain::establishment::Failure;
use bcdi_shared::domain::{Establishment, Instant, Rne, Status};
use bcdi_shared::ports::{
    AfterFailure, Delivery, DeliveryState, EstablishmentStore, Notification, NotificationStore,
    StoreError,
};
use tokio::sync::Barrier;

use crate::store_suite::{key, new_establishment, rne, CREATED_AT};

/// A store of both kinds, as the adapters are.
pub trait Stores: EstablishmentStore + NotificationStore + 'static {}
impl<T: EstablishmentStore + NotificationStore + 'static> Stores for T {}

/// How many workers race in the concurrency test.
const RACERS: usize = 20;

/// One `#[tokio::test]` per function of this module, each on a new store from `$store` (an
/// async fn returning an `Arc` of a type that implements both store traits), and the failure
/// test on a store from `$broken`, whose every call fails. A function added to the module must
/// be listed here too.
#[macro_export]
macro_rules! notification_suite {
    ($store:path, $broken:path) => {
        $crate::notification_suite!(@each $store;
            a_created_establishment_has_its_notification_pending_and_due_at_once,
            each_transition_adds_a_pending_notification,
            due_notifications_come_soonest_first_up_to_the_limit,
            an_attempt_is_counted_and_held_back_until_its_lease_ends,
            a_later_attempt_keeps_the_first_sending_instant,
            an_attempt_from_a_stale_count_conflicts_and_changes_nothing,
            concurrent_attempts_let_exactly_one_worker_send,
            a_failure_schedules_the_retry_and_keeps_the_error,
            the_failure_of_a_superseded_attempt_conflicts,
            an_acknowledged_notification_is_never_due_again,
            a_given_up_notification_keeps_its_error_and_is_never_due_again,
            a_skipped_notification_is_never_due_again,
            an_unknown_notification_conflicts,
            undoing_a_creation_removes_its_notification,
            pending_notifications_stay_out_of_the_listing_by_status,
        );

        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn notification_failures_are_unavailable() {
            $crate::notification_suite::notification_failures_are_unavailable($broken().await)
                .await;
        }
    };
    (@each $store:path; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::notification_suite::$name($store().await).await;
            }
        )*
    };
}

/// `CREATED_AT` plus `seconds`.
fn at(seconds: i64) -> Instant {
    Instant::from_unix(CREATED_AT + seconds)
}

/// A new establishment in status `1`, changed at `CREATED_AT + offset`.
async fn created<S: Stores>(store: &Arc<S>, code: &str, offset: i64) -> Establishment {
    let mut establishment = new_establishment(code, code);
    establishment.created_at = at(offset);
    establishment.status_changed_at = at(offset);
    store
        .create(&establishment)
        .await
        .expect("the establishment is created");
    establishment
}

async fn notifications_of<S: Stores>(store: &Arc<S>, rne: &Rne) -> Vec<Notification> {
    store.notifications(rne).await.expect("the store answers")
}

/// The only notification of `rne`.
async fn only<S: Stores>(store: &Arc<S>, rne: &Rne) -> Notification {
    let mut notifications = notifications_of(store, rne).await;
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    notifications.remove(0)
}

/// The `(rne, seq)` of the notifications due at `now`, in the order given.
async fn due<S: Stores>(store: &Arc<S>, now: Instant, limit: usize) -> Vec<(String, u32)> {
    store
        .due_notifications(now, limit)
        .await
        .expect("the store answers")
        .into_iter()
        .map(|notification| (notification.rne.to_string(), notification.event.seq))
        .collect()
}

fn pending(next_attempt_at: Instant) -> DeliveryState {
    DeliveryState::Pending { next_attempt_at }
}

// The suite.

pub async fn a_created_establishment_has_its_notification_pending_and_due_at_once<S: Stores>(
    store: Arc<S>,
) {
    // Given a new establishment, created at +0
    let establishment = created(&store, "0750655E", 0).await;

    // Then its first event is a notification, pending since that instant, never attempted
    assert_eq!(
        notifications_of(&store, &establishment.rne).await,
        vec![Notification {
            rne: establishment.rne.clone(),
            event: establishment.first_event(),
            delivery: Delivery::new(at(0)),
        }]
    );
    // And it is due from that instant on, not before
    assert_eq!(due(&store, at(0), 10).await, [("0750655E".to_owned(), 1)]);
    assert!(due(&store, at(-1), 10).await.is_empty());
}

pub async fn each_transition_adds_a_pending_notification<S: Stores>(store: Arc<S>) {
    // Given an establishment whose installation failed at +60
    let establishment = created(&store, "0750654D", 0).await;
    let mut change = establishment
        .transition(Status::InstallFailed, at(60))
        .expect("1 → E1 is allowed");
    change.failure = Some(Failure {
        reason: "install_timeout".to_owned(),
        detail: "The installation did not finish in time.".to_owned(),
    });
    store
        .transition(&establishment.rne, &change)
        .await
        .expect("the transition is stored");

    // Then the change is a second notification, with its previous status, pending from +60
    let notifications = notifications_of(&store, &establishment.rne).await;
    assert_eq!(notifications.len(), 2, "{notifications:?}");
    assert_eq!(notifications[1].event, change.event);
    assert_eq!(notifications[1].event.previous, Some(Status::Installing));
    assert_eq!(notifications[1].delivery, Delivery::new(at(60)));
    assert_eq!(
        due(&store, at(60), 10).await,
        [("0750654D".to_owned(), 1), ("0750654D".to_owned(), 2)]
    );
}

pub async fn due_notifications_come_soonest_first_up_to_the_limit<S: Stores>(store: Arc<S>) {
    // Given three establishments created at +300, +100 and +200
    for (code, offset) in [("0752526N", 300), ("0752538B", 100), ("0160010Z", 200)] {
        created(&store, code, offset).await;
    }

    // Then they are due soonest first, as many as asked, and only once due
    let all = [
        ("0752538B".to_owned(), 1),
        ("0160010Z".to_owned(), 1),
        ("0752526N".to_owned(), 1),
    ];
    assert_eq!(due(&store, at(1000), 10).await, all);
    assert_eq!(due(&store, at(1000), 2).await, all[..2]);
    assert_eq!(due(&store, at(150), 10).await, all[..1]);
}

pub async fn an_attempt_is_counted_and_held_back_until_its_lease_ends<S: Stores>(store: Arc<S>) {
    // Given a pending notification
    let establishment = created(&store, "6200001G", 0).await;
    let rne = &establishment.rne;

    // When a worker takes it at +5 for an attempt, with a lease until +45
    store
        .begin_attempt(rne, 1, 0, at(5), at(45))
        .await
        .expect("the attempt begins");

    // Then the attempt is counted and its instant stored, and it is not due until +45
    let notification = only(&store, rne).await;
    assert_eq!(notification.delivery.attempts, 1);
    assert_eq!(notification.delivery.sent_at, Some(at(5)));
    assert_eq!(notification.delivery.last_attempt_at, Some(at(5)));
    assert_eq!(notification.delivery.state, pending(at(45)));
    assert!(due(&store, at(44), 10).await.is_empty());
    assert_eq!(due(&store, at(45), 10).await, [("6200001G".to_owned(), 1)]);
}

pub async fn a_later_attempt_keeps_the_first_sending_instant<S: Stores>(store: Arc<S>) {
    // Given a notification whose first attempt, at +5, failed
    let establishment = created(&store, "6200002H", 0).await;
    let rne = &establishment.rne;
    store.begin_attempt(rne, 1, 0, at(5), at(45)).await.unwrap();
    let retry = AfterFailure::RetryAt(at(10));
    store
        .record_failure(rne, 1, 1, "HTTP 503", retry)
        .await
        .unwrap();

    // When the second attempt begins at +10
    store
        .begin_attempt(rne, 1, 1, at(10), at(50))
        .await
        .expect("the second attempt begins");

    // Then the first sending instant stays, the latest is +10
    let delivery = only(&store, rne).await.delivery;
    assert_eq!(delivery.attempts, 2);
    assert_eq!(delivery.sent_at, Some(at(5)));
    assert_eq!(delivery.last_attempt_at, Some(at(10)));
}

pub async fn an_attempt_from_a_stale_count_conflicts_and_changes_nothing<S: Stores>(store: Arc<S>) {
    // Given a notification a worker took at +5
    let establishment = created(&store, "7200009X", 0).await;
    let rne = &establishment.rne;
    store.begin_attempt(rne, 1, 0, at(5), at(45)).await.unwrap();
    let before = only(&store, rne).await;

    // When another worker, which read it before that, takes it too
    let result = store.begin_attempt(rne, 1, 0, at(6), at(46)).await;

    // Then it is refused and nothing changes
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(only(&store, rne).await, before);
}

pub async fn concurrent_attempts_let_exactly_one_worker_send<S: Stores>(store: Arc<S>) {
    // Given a pending notification and twenty workers that read it at once
    let establishment = created(&store, "7200021K", 0).await;
    let start = Arc::new(Barrier::new(RACERS));

    // When they all try to take it
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            let rne = establishment.rne.clone();
            tokio::spawn(async move {
                start.wait().await;
                let now = at(5 + i as i64);
                store.begin_attempt(&rne, 1, 0, now, at(100)).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("a racing task does not panic"));
    }

    // Then exactly one gets it, the others are told so, and one attempt is counted
    let winners = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|result| matches!(result, Ok(()) | Err(StoreError::Conflict))),
        "{results:?}"
    );
    assert_eq!(only(&store, &establishment.rne).await.delivery.attempts, 1);
}

pub async fn a_failure_schedules_the_retry_and_keeps_the_error<S: Stores>(store: Arc<S>) {
    // Given a notification whose attempt at +5 failed with a 500
    let establishment = created(&store, "9710002A", 0).await;
    let rne = &establishment.rne;
    store.begin_attempt(rne, 1, 0, at(5), at(45)).await.unwrap();

    // When the retry is set for +25
    store
        .record_failure(rne, 1, 1, "HTTP 500", AfterFailure::RetryAt(at(25)))
        .await
        .expect("the failure is recorded");

    // Then it is pending until +25 with the error, and due from then on
    let delivery = only(&store, rne).await.delivery;
    assert_eq!(delivery.state, pending(at(25)));
    assert_eq!(delivery.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(delivery.attempts, 1);
    assert!(due(&store, at(24), 10).await.is_empty());
    assert_eq!(due(&store, at(25), 10).await, [("9710002A".to_owned(), 1)]);
}

pub async fn the_failure_of_a_superseded_attempt_conflicts<S: Stores>(store: Arc<S>) {
    // Given a notification whose first attempt's lease lapsed and a second attempt began
    let establishment = created(&store, "9710003B", 0).await;
    let rne = &establishment.rne;
    store.begin_attempt(rne, 1, 0, at(5), at(45)).await.unwrap();
    store
        .begin_attempt(rne, 1, 1, at(45), at(85))
        .await
        .unwrap();
    let before = only(&store, rne).await;

    // When the first attempt's failure arrives late
    let result = store
        .record_failure(rne, 1, 1, "timed out", AfterFailure::RetryAt(at(50)))
        .await;

    // Then it is refused: the second attempt owns the notification
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(only(&store, rne).await, before);
}

pub async fn an_acknowledged_notification_is_never_due_again<S: Stores>(store: Arc<S>) {
    // Given a notification acknowledged at +6 after an attempt at +5
    let establishment = created(&store, "9740787M", 0).await;
    let rne = &establishment.rne;
    store.begin_attempt(rne, 1, 0, at(5), at(45)).await.unwrap();
    store
        .acknowledge(rne, 1, at(6))
        .await
        .expect("the acknowledgement is recorded");

    // Then when it was sent and acknowledged is stored, and it is never due again
    let delivery = only(&store, rne).await.delivery;
    assert_eq!(delivery.state, DeliveryState::Acknowledged { at: at(6) });
    assert_eq!(delivery.acknowledged_at(), Some(at(6)));
    assert_eq!(delivery.sent_at, Some(at(5)));
    assert!(due(&store, at(1_000_000), 10).await.is_empty());

    // And nothing more can happen to it
    let again = [
        store.acknowledge(rne, 1, at(7)).await,
        store.begin_attempt(rne, 1, 1, at(7), at(47)).await,
        store
            .record_failure(rne, 1, 1, "HTTP 500", AfterFailure::RetryAt(at(8)))
            .await,
        store.skip(rne, 1, at(7)).await,
    ];
    for result in again {
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    }
    assert_eq!(only(&store, rne).await.delivery, delivery);
}

pub async fn a_given_up_notification_keeps_its_error_and_is_never_due_again<S: Stores>(
    store: Arc<S>,
) {
    // Given a notification whose last attempt, at +5, failed after the retry window closed
    let establishment = created(&store, "0750655E", 0).await;
    let rne = &establishment.rne;
    store.begin_attempt(rne, 1, 0, at(5), at(45)).await.unwrap();

    // When it is given up at +6
    store
        .record_failure(rne, 1, 1, "connection failed", AfterFailure::GiveUp(at(6)))
        .await
        .expect("the failure is recorded");

    // Then it says so, keeps the error, and is never due again
    let delivery = only(&store, rne).await.delivery;
    assert_eq!(delivery.state, DeliveryState::GivenUp { at: at(6) });
    assert_eq!(delivery.last_error.as_deref(), Some("connection failed"));
    assert_eq!(delivery.acknowledged_at(), None);
    assert!(due(&store, at(1_000_000), 10).await.is_empty());
    let retry = store.begin_attempt(rne, 1, 1, at(7), at(47)).await;
    assert!(matches!(retry, Err(StoreError::Conflict)), "{retry:?}");
}

pub async fn a_skipped_notification_is_never_due_again<S: Stores>(store: Arc<S>) {
    // Given a pending notification
    let establishment = created(&store, "0160010Z", 0).await;
    let rne = &establishment.rne;

    // When it is skipped at +1, no webhook being configured
    store.skip(rne, 1, at(1)).await.expect("it is skipped");

    // Then it was never sent and is never due again
    let delivery = only(&store, rne).await.delivery;
    assert_eq!(delivery.state, DeliveryState::Skipped { at: at(1) });
    assert_eq!(delivery.attempts, 0);
    assert_eq!(delivery.sent_at, None);
    assert!(due(&store, at(1_000_000), 10).await.is_empty());
    let attempt = store.begin_attempt(rne, 1, 0, at(2), at(42)).await;
    assert!(matches!(attempt, Err(StoreError::Conflict)), "{attempt:?}");
}

pub async fn an_unknown_notification_conflicts<S: Stores>(store: Arc<S>) {
    // Given an establishment with one event
    let establishment = created(&store, "0752526N", 0).await;
    let stranger = rne("0752538B");
    let rne = &establishment.rne;

    // Then an event it does not have, or another establishment's, cannot be touched
    let results = [
        store.begin_attempt(rne, 2, 0, at(1), at(41)).await,
        store.begin_attempt(&stranger, 1, 0, at(1), at(41)).await,
        store.acknowledge(&stranger, 1, at(1)).await,
        store.skip(&stranger, 1, at(1)).await,
        store
            .record_failure(&stranger, 1, 1, "HTTP 500", AfterFailure::GiveUp(at(1)))
            .await,
    ];
    for result in results {
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    }
    // And none was created by trying
    assert!(notifications_of(&store, &stranger).await.is_empty());
    assert_eq!(notifications_of(&store, rne).await.len(), 1);
}

pub async fn undoing_a_creation_removes_its_notification<S: Stores>(store: Arc<S>) {
    // Given an establishment whose workflow could not be started
    let establishment = created(&store, "0752538B", 0).await;

    // When its creation is undone
    store
        .delete_unstarted(&establishment.rne, &key("0752538B"))
        .await
        .expect("it is removed");

    // Then no webhook is left to announce it
    assert!(notifications_of(&store, &establishment.rne)
        .await
        .is_empty());
    assert!(due(&store, at(1_000_000), 10).await.is_empty());
}

pub async fn pending_notifications_stay_out_of_the_listing_by_status<S: Stores>(store: Arc<S>) {
    // Given two establishments, one of which failed, all notifications pending
    let installing = created(&store, "6200001G", 0).await;
    let failed = created(&store, "6200002H", 10).await;
    let change = failed
        .transition(Status::InstallFailed, at(20))
        .expect("1 → E1 is allowed");
    store.transition(&failed.rne, &change).await.unwrap();

    // Then the operators' listings show establishments only, each once
    let listed = |status| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_by_status(status, None, 100)
                .await
                .expect("the store answers")
                .items
                .into_iter()
                .map(|establishment| establishment.rne.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(Status::Installing).await,
        [installing.rne.to_string()]
    );
    assert_eq!(
        listed(Status::InstallFailed).await,
        [failed.rne.to_string()]
    );
    assert!(listed(Status::AwaitingBases).await.is_empty());
}

pub async fn notification_failures_are_unavailable<S: Stores>(broken: Arc<S>) {
    let rne = rne("0750655E");
    let failures = [
        (
            "due_notifications",
            broken.due_notifications(at(0), 10).await.err(),
        ),
        ("notifications", broken.notifications(&rne).await.err()),
        (
            "begin_attempt",
            broken.begin_attempt(&rne, 1, 0, at(0), at(40)).await.err(),
        ),
        (
            "record_failure",
            broken
                .record_failure(&rne, 1, 1, "HTTP 500", AfterFailure::RetryAt(at(9)))
                .await
                .err(),
        ),
        (
            "acknowledge",
            broken.acknowledge(&rne, 1, at(0)).await.err(),
        ),
        ("skip", broken.skip(&rne, 1, at(0)).await.err()),
    ];
    for (operation, error) in failures {
        assert!(
            matches!(error, Some(StoreError::Unavailable(_))),
            "{operation} is Unavailable, not {error:?}"
        );
    }
}
