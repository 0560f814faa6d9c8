//! Status notifications: the `NotificationStore` suite on SQLite and DynamoDB (moto), then
//! webhooks end to end against a receiver on loopback that checks every signature with the
//! Standard Webhooks reference library (not our signer), answers 500 when told to, and drops
//! duplicates by `webhook-id` as an integrator would.

use std::sync::Arc;
use std::time::Duration;

use bcdi_shared::domain::{Establishment, Instant, Status};
use bcdi_shared::notify::{NotificationSettings, Notifier, Round};
use bcdi_shared::ports::{DeliveryState, EstablishmentStore, Notification, NotificationStore};
use bcdi_tests::store_suite::new_establishment;
use serde_json::Value;

/// Two secrets as `WEBHOOK_SECRET` takes them.
const SECRET: &str = "whsec_1x2w+MgARqrRFl8FGRgmcPHZJuPmnuW07KWoA97rHeQ=";
const OTHER_SECRET: &str = "whsec_IQ6wARcj8fVY6rUemnB1Qc1xoVoLmIxy4yzLn62897M=";

/// How long a test waits for deliveries that take a few seconds, before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

mod sqlite {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{SystemTime, UNIX_EPOCH};

    use bcdi_hosting::sqlite::SqliteStore;
    use bcdi_shared::domain::Instant;
    use bcdi_shared::ports::{EstablishmentStore, NotificationStore};
    use bcdi_tests::store_suite::{new_establishment, rne, CREATED_AT};

    async fn store() -> Arc<SqliteStore> {
        Arc::new(SqliteStore::in_memory().expect("an in-memory database"))
    }

    /// A store whose tables were dropped behind its back: every call fails inside SQLite.
    async fn broken_store() -> Arc<SqliteStore> {
        let path = fresh_database_path("broken");
        let store = SqliteStore::open(&path).expect("the database opens");
        rusqlite::Connection::open(&path)
            .and_then(|other| other.execute_batch("DROP TABLE events;"))
            .expect("the table is dropped");
        Arc::new(store)
    }

    fn fresh_database_path(purpose: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        std::env::temp_dir()
            .join(format!(
                "bcdi-notify-{purpose}-{}-{nanos}",
                std::process::id()
            ))
            .join("bcdi.sqlite3")
    }

    bcdi_tests::notification_suite!(store, broken_store);

    #[tokio::test]
    async fn a_database_from_before_notifications_opens_and_its_old_events_stay_unsent() {
        // Given a database whose events table predates notifications, with one event
        let path = fresh_database_path("migration");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        rusqlite::Connection::open(&path)
            .and_then(|old| {
                old.execute_batch(
                    "CREATE TABLE events (
                         rne TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,
                         previous TEXT, at INTEGER NOT NULL, PRIMARY KEY (rne, seq)
                     ) STRICT;
                     INSERT INTO events VALUES ('0750654D', 1, '1', NULL, 1764763200);",
                )
            })
            .expect("the old database is written");

        // When the store opens it, twice (a restart)
        drop(SqliteStore::open(&path).expect("the old database opens"));
        let store = SqliteStore::open(&path).expect("it opens again");

        // Then the old event is still history but no webhook, and new events are notified
        let old = rne("0750654D");
        assert_eq!(store.history(&old).await.unwrap().len(), 1);
        assert!(store.notifications(&old).await.unwrap().is_empty());
        let establishment = new_establishment("0750655E", "after-migration");
        store.create(&establishment).await.unwrap();
        let due = store
            .due_notifications(Instant::from_unix(CREATED_AT + 1), 10)
            .await
            .unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].rne, establishment.rne);
        if let Some(directory) = path.parent() {
            let _ = std::fs::remove_dir_all(directory);
        }
    }
}

mod dynamodb {
    use std::sync::Arc;

    use aws_sdk_dynamodb::types::AttributeValue;
    use bcdi_shared::adapters::dynamodb::{create_table, DynamoDbStore};
    use bcdi_shared::domain::Instant;
    use bcdi_shared::ports::{EstablishmentStore, NotificationStore};
    use bcdi_tests::moto;
    use bcdi_tests::store_suite::{new_establishment, CREATED_AT};

    pub async fn store() -> Arc<DynamoDbStore> {
        let client = moto::dynamodb_client().await;
        let table = moto::unique_table_name("notifications");
        create_table(&client, &table)
            .await
            .unwrap_or_else(|error| panic!("creating table {table} on moto: {error}"));
        Arc::new(DynamoDbStore::new(client, table))
    }

    /// A store on a table that was never created.
    async fn broken_store() -> Arc<DynamoDbStore> {
        let table = moto::unique_table_name("missing");
        Arc::new(DynamoDbStore::new(moto::dynamodb_client().await, table))
    }

    bcdi_tests::notification_suite!(store, broken_store);

    #[tokio::test]
    async fn an_event_item_is_in_the_pending_index_partition_until_it_is_acknowledged() {
        // Given an establishment just created
        let client = moto::dynamodb_client().await;
        let table = moto::unique_table_name("notify-layout");
        create_table(&client, &table)
            .await
            .expect("the table is created");
        let store = DynamoDbStore::new(client.clone(), table.clone());
        let establishment = new_establishment("0750655E", "layout");
        store.create(&establishment).await.expect("it is created");
        let event = || {
            client
                .get_item()
                .table_name(&table)
                .key("pk", AttributeValue::S("EST#0750655E".to_owned()))
                .key("sk", AttributeValue::S("EVENT#0000000001".to_owned()))
                .send()
        };

        // Then its event item carries the documented pending marker
        let item = event().await.expect("GetItem").item.expect("the event");
        let s = |value: &str| Some(AttributeValue::S(value.to_owned()));
        assert_eq!(item.get("notify_state").cloned(), s("pending"));
        assert_eq!(item.get("gsi1pk").cloned(), s("NOTIFY#PENDING"));
        assert_eq!(
            item.get("gsi1sk").cloned(),
            s("001764763200#0750655E#0000000001")
        );

        // And once acknowledged, it leaves the index
        let now = Instant::from_unix(CREATED_AT + 3);
        store
            .begin_attempt(&establishment.rne, 1, 0, now, now)
            .await
            .unwrap();
        store.acknowledge(&establishment.rne, 1, now).await.unwrap();
        let item = event().await.expect("GetItem").item.expect("the event");
        assert_eq!(item.get("notify_state").cloned(), s("acknowledged"));
        assert_eq!(item.get("gsi1pk"), None);
        assert_eq!(item.get("gsi1sk"), None);
    }
}

/// A webhook receiver on a loopback port, written as the Cyberlibrairie would: it verifies
/// each signature with the `standardwebhooks` crate and processes each `webhook-id` once.
mod receiver {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::Router;
    use serde_json::Value;
    use standardwebhooks::Webhook;

    #[derive(Debug, Clone, Copy)]
    pub enum Behaviour {
        /// 500 to the first `n` deliveries of each id, then 200.
        FailFirst(usize),
        /// 500, always.
        AlwaysFail,
        /// Processes the first delivery of each id but answers it only after this long.
        AnswerLate(Duration),
        /// Answers 200 to every delivery after this long.
        AnswerAfter(Duration),
    }

    /// One request as received.
    #[derive(Debug, Clone)]
    pub struct Delivery {
        pub id: String,
        pub timestamp: i64,
        pub signature_valid: bool,
        pub answered: u16,
        /// Whether another delivery was still being answered when this one arrived.
        pub overlapped: bool,
        pub headers: HeaderMap,
        pub body: Vec<u8>,
    }

    impl Delivery {
        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body).expect("a JSON body")
        }
    }

    struct Inner {
        verifier: Webhook,
        behaviour: Behaviour,
        deliveries: Mutex<Vec<Delivery>>,
        /// The events processed, once per id, in order.
        processed: Mutex<Vec<(String, Value)>>,
        /// Deliveries being answered right now.
        in_flight: Mutex<usize>,
    }

    pub struct Receiver {
        /// The URL to configure, with a token in its query as some receivers want.
        pub url: String,
        inner: Arc<Inner>,
    }

    impl Receiver {
        pub async fn start(secret: &str, behaviour: Behaviour) -> Self {
            let inner = Arc::new(Inner {
                verifier: Webhook::new(secret).expect("a Standard Webhooks secret"),
                behaviour,
                deliveries: Mutex::new(Vec::new()),
                processed: Mutex::new(Vec::new()),
                in_flight: Mutex::new(0),
            });
            let app = Router::new()
                .route("/hooks/bcdi", post(receive))
                .with_state(Arc::clone(&inner));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a free loopback port");
            let address = listener.local_addr().expect("its address");
            tokio::spawn(async move { axum::serve(listener, app).await });
            Self {
                url: format!("http://{address}/hooks/bcdi?token=hunter2"),
                inner,
            }
        }

        pub fn deliveries(&self) -> Vec<Delivery> {
            self.inner.deliveries.lock().unwrap().clone()
        }

        pub fn deliveries_of(&self, id: &str) -> Vec<Delivery> {
            self.deliveries()
                .into_iter()
                .filter(|delivery| delivery.id == id)
                .collect()
        }

        pub fn processed(&self) -> Vec<(String, Value)> {
            self.inner.processed.lock().unwrap().clone()
        }
    }

    async fn receive(
        State(inner): State<Arc<Inner>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let id = header("webhook-id");
        let overlapped = {
            let mut in_flight = inner.in_flight.lock().unwrap();
            *in_flight += 1;
            *in_flight > 1
        };
        let signature_valid = inner.verifier.verify(&body, &headers).is_ok();
        let earlier = inner
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .filter(|delivery| delivery.id == id)
            .count();
        let answer = match (signature_valid, inner.behaviour) {
            (false, _) => StatusCode::UNAUTHORIZED,
            (true, Behaviour::FailFirst(n)) if earlier < n => StatusCode::INTERNAL_SERVER_ERROR,
            (true, Behaviour::AlwaysFail) => StatusCode::INTERNAL_SERVER_ERROR,
            (true, _) => StatusCode::OK,
        };
        if answer == StatusCode::OK {
            // Dedupe: an id seen before was processed then; it is acknowledged, not redone.
            let mut processed = inner.processed.lock().unwrap();
            if !processed.iter().any(|(seen, _)| *seen == id) {
                let event = serde_json::from_slice(&body).unwrap_or(Value::Null);
                processed.push((id.clone(), event));
            }
        }
        inner.deliveries.lock().unwrap().push(Delivery {
            id,
            timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
            signature_valid,
            answered: answer.as_u16(),
            overlapped,
            headers: headers.clone(),
            body: body.to_vec(),
        });
        match inner.behaviour {
            Behaviour::AnswerLate(delay) if earlier == 0 => tokio::time::sleep(delay).await,
            Behaviour::AnswerAfter(delay) => tokio::time::sleep(delay).await,
            _ => {}
        }
        *inner.in_flight.lock().unwrap() -= 1;
        answer
    }
}

use receiver::{Behaviour, Receiver};

/// Webhook settings for `url` with `secret`, retries due within a second, and `extra`.
fn settings(url: &str, secret: &str, extra: &[(&str, &str)]) -> NotificationSettings {
    let mut vars = vec![
        ("WEBHOOK_URL", url),
        ("WEBHOOK_SECRET", secret),
        ("WEBHOOK_RETRY_FIRST_SECONDS", "1"),
        ("WEBHOOK_RETRY_MAX_SECONDS", "1"),
        ("WEBHOOK_TIMEOUT_SECONDS", "5"),
    ];
    vars.retain(|(name, _)| !extra.iter().any(|(other, _)| other == name));
    vars.extend_from_slice(extra);
    NotificationSettings::from_lookup(|name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .expect("valid webhook settings")
}

/// A new establishment in status `1`, created now: its notification is due at once and its
/// retry window is open.
fn created_now(code: &str) -> Establishment {
    let mut establishment = new_establishment(code, code);
    let now = Instant::now();
    establishment.created_at = now;
    establishment.status_changed_at = now;
    establishment
}

async fn notifications_of(store: &dyn NotificationStore, rne: &str) -> Vec<Notification> {
    let rne = bcdi_tests::store_suite::rne(rne);
    store.notifications(&rne).await.expect("the store answers")
}

/// Waits until `done` holds of the notifications of `rne`; fails the test after `PATIENCE`.
async fn until(
    store: &dyn NotificationStore,
    rne: &str,
    what: &str,
    done: impl Fn(&[Notification]) -> bool,
) -> Vec<Notification> {
    let started = std::time::Instant::now();
    loop {
        let notifications = notifications_of(store, rne).await;
        if done(&notifications) {
            return notifications;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: still {notifications:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn all_acknowledged(count: usize) -> impl Fn(&[Notification]) -> bool {
    move |notifications| {
        notifications.len() == count
            && notifications
                .iter()
                .all(|notification| notification.delivery.acknowledged_at().is_some())
    }
}

/// Runs rounds of `notifier` until `done` holds of the notifications of `rne`.
async fn rounds_until(
    notifier: &Notifier,
    store: &dyn NotificationStore,
    rne: &str,
    done: impl Fn(&[Notification]) -> bool,
) -> Vec<Notification> {
    let started = std::time::Instant::now();
    loop {
        notifier.deliver_due(100).await.expect("the store answers");
        let notifications = notifications_of(store, rne).await;
        if done(&notifications) {
            return notifications;
        }
        assert!(started.elapsed() < PATIENCE, "still {notifications:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

mod webhooks {
    use super::*;
    use bcdi_hosting::sqlite::SqliteStore;
    use bcdi_shared::domain::establishment::Failure;
    use bcdi_tests::app::TestApp;

    #[tokio::test]
    async fn each_status_change_is_signed_retried_after_500s_and_acknowledged_once() {
        // Given the service with its notification worker, and a receiver that answers 500 to
        // the first two deliveries of each webhook
        let receiver = Receiver::start(SECRET, Behaviour::FailFirst(2)).await;
        let store = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        let app = TestApp::spawn_with_store(store.clone()).await;
        let notifier =
            Notifier::new(store.clone(), settings(&receiver.url, SECRET, &[])).expect("a notifier");
        tokio::spawn(notifier.clone().run(Duration::from_millis(200), 100));

        // When the Cyberlibrairie creates an establishment and its installation then fails
        app.create("0750655E").await;
        let rne = bcdi_tests::store_suite::rne("0750655E");
        let establishment = store.get(&rne).await.unwrap().expect("it exists");
        let mut change = establishment
            .transition(Status::InstallFailed, Instant::now())
            .expect("1 → E1 is allowed");
        change.failure = Some(Failure {
            reason: "install_timeout".to_owned(),
            detail: "The installation did not finish in time.".to_owned(),
        });
        store.transition(&rne, &change).await.expect("it fails");

        // Then both changes are eventually acknowledged
        let notifications = until(
            store.as_ref(),
            "0750655E",
            "both acknowledged",
            all_acknowledged(2),
        )
        .await;

        // And the receiver saw each webhook three times, under one id, validly signed,
        // answered 500, 500 then 200, and processed it once
        let ids: Vec<String> = notifications
            .iter()
            .map(|n| format!("evt_0750655E_{}_{}", n.event.seq, n.event.at.unix()))
            .collect();
        assert_ne!(ids[0], ids[1]);
        for (notification, id) in notifications.iter().zip(&ids) {
            let deliveries = receiver.deliveries_of(id);
            let answers: Vec<u16> = deliveries.iter().map(|d| d.answered).collect();
            assert_eq!(answers, [500, 500, 200], "{id}: {deliveries:#?}");
            assert!(
                deliveries.iter().all(|d| d.signature_valid),
                "{deliveries:#?}"
            );
            assert!(deliveries.iter().all(|d| d.body == deliveries[0].body));

            // And the store knows when it was first sent, last sent and acknowledged
            let delivery = &notification.delivery;
            assert_eq!(delivery.attempts, 3);
            assert_eq!(delivery.last_error.as_deref(), Some("HTTP 500"));
            assert_eq!(
                delivery.sent_at.map(Instant::unix),
                Some(deliveries[0].timestamp)
            );
            assert_eq!(
                delivery.last_attempt_at.map(Instant::unix),
                Some(deliveries[2].timestamp)
            );
            assert!(delivery.acknowledged_at() >= delivery.last_attempt_at);
        }
        assert_eq!(receiver.deliveries().len(), 6);
        // (Deliveries run concurrently: the two events may be processed in either order.)
        let mut processed = receiver.processed();
        processed.sort_by_key(|(_, event)| event["data"]["seq"].as_u64());
        assert_eq!(
            processed
                .iter()
                .map(|(id, _)| id.clone())
                .collect::<Vec<_>>(),
            ids
        );

        // And the bodies say what changed, in both time forms
        let first = &processed[0].1;
        assert_eq!(first["type"], "establishment.status_changed");
        assert_eq!(first["data"]["rne"], "0750655E");
        assert_eq!(first["data"]["status"], "1");
        assert_eq!(first["data"]["previous_status"], Value::Null);
        let second = &processed[1].1;
        assert_eq!(second["data"]["status"], "E1");
        assert_eq!(second["data"]["previous_status"], "1");
        assert_eq!(second["data"]["seq"], 2);
        assert_eq!(second["data"]["timestamp"], change.event.at.unix());
        assert_eq!(second["data"]["at"], change.event.at.rfc3339());
        assert_eq!(second["timestamp"], change.event.at.rfc3339());

        // And once acknowledged, nothing is sent again
        let round = notifier.deliver_due(100).await.expect("the store answers");
        assert!(round.is_empty(), "{round:?}");
        assert_eq!(receiver.deliveries().len(), 6);
    }

    #[tokio::test]
    async fn one_establishments_changes_are_sent_one_after_the_other_in_order() {
        // Given an establishment with five changes due at once, and a receiver that takes a
        // moment to answer each webhook
        let receiver =
            Receiver::start(SECRET, Behaviour::AnswerAfter(Duration::from_millis(150))).await;
        let store = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        let notifier = Notifier::new(store.clone(), settings(&receiver.url, SECRET, &[])).unwrap();
        let mut establishment = created_now("7200021K");
        store.create(&establishment).await.unwrap();
        for status in [
            Status::InstallFailed,
            Status::Installing,
            Status::InstallFailed,
            Status::Installing,
        ] {
            let change = establishment.transition(status, Instant::now()).unwrap();
            store.transition(&establishment.rne, &change).await.unwrap();
            establishment.apply(&change);
        }

        // When one round sends them
        let round = notifier.deliver_due(100).await.expect("the store answers");

        // Then they arrived in the order of the history, each after the previous was answered
        assert_eq!(round.acknowledged, 5, "{round:?}");
        let deliveries = receiver.deliveries();
        let seqs: Vec<u64> = deliveries
            .iter()
            .filter_map(|d| d.json()["data"]["seq"].as_u64())
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert!(deliveries.iter().all(|d| !d.overlapped), "{deliveries:#?}");
    }

    #[tokio::test]
    async fn a_webhook_processed_but_acknowledged_too_late_is_resent_and_deduplicated() {
        // Given a receiver that processes a webhook but answers after the sender gave up
        // waiting (a lost acknowledgement)
        let receiver = Receiver::start(SECRET, Behaviour::AnswerLate(Duration::from_secs(3))).await;
        let store = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        let extra = [("WEBHOOK_TIMEOUT_SECONDS", "1")];
        let notifier =
            Notifier::new(store.clone(), settings(&receiver.url, SECRET, &extra)).unwrap();
        store.create(&created_now("0750654D")).await.unwrap();

        // When the notifier runs until the webhook is acknowledged
        let notifications =
            rounds_until(&notifier, store.as_ref(), "0750654D", all_acknowledged(1)).await;

        // Then the first attempt timed out, the retry carried the same id, and the receiver
        // processed the event once
        let delivery = &notifications[0].delivery;
        assert_eq!(delivery.attempts, 2);
        assert!(
            delivery
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("timed out")),
            "{delivery:?}"
        );
        let deliveries = receiver.deliveries();
        assert_eq!(deliveries.len(), 2, "{deliveries:#?}");
        assert_eq!(deliveries[0].id, deliveries[1].id);
        assert_eq!(receiver.processed().len(), 1);
    }

    #[tokio::test]
    async fn a_webhook_signed_with_another_secret_fails_verification_and_is_retried() {
        // Given a receiver that expects another secret than the one configured
        let receiver = Receiver::start(OTHER_SECRET, Behaviour::FailFirst(0)).await;
        let store = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        let notifier = Notifier::new(store.clone(), settings(&receiver.url, SECRET, &[])).unwrap();
        store.create(&created_now("0160010Z")).await.unwrap();

        // When the notification is sent
        let round = notifier.deliver_due(100).await.expect("the store answers");

        // Then the receiver's verification rejects it, and it stays pending with the 401
        assert_eq!(round.retrying, 1, "{round:?}");
        let deliveries = receiver.deliveries();
        assert_eq!(deliveries.len(), 1);
        assert!(!deliveries[0].signature_valid);
        assert_eq!(deliveries[0].answered, 401);
        assert!(receiver.processed().is_empty());
        let notification = &notifications_of(store.as_ref(), "0160010Z").await[0];
        assert!(matches!(
            notification.delivery.state,
            DeliveryState::Pending { .. }
        ));
        assert_eq!(
            notification.delivery.last_error.as_deref(),
            Some("HTTP 401")
        );

        // And the very same request passes with the right secret: only the secret was wrong
        let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
        verifier
            .verify(&deliveries[0].body, &deliveries[0].headers)
            .expect("the signature is valid for the configured secret");
    }

    #[tokio::test]
    async fn without_a_webhook_url_nothing_is_sent_and_notifications_are_skipped() {
        // Given a notifier with no WEBHOOK_URL nor WEBHOOK_SECRET
        let store = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        let settings = NotificationSettings::from_lookup(|_| None).unwrap();
        let notifier = Notifier::new(store.clone(), settings).unwrap();
        assert!(!notifier.is_configured());
        store.create(&created_now("0752526N")).await.unwrap();

        // When it runs
        let round = notifier.deliver_due(100).await.expect("the store answers");

        // Then the notification is ended as skipped, never attempted, and no backlog is left
        assert_eq!(
            round,
            Round {
                skipped: 1,
                ..Round::default()
            }
        );
        let notification = &notifications_of(store.as_ref(), "0752526N").await[0];
        assert!(matches!(
            notification.delivery.state,
            DeliveryState::Skipped { .. }
        ));
        assert_eq!(notification.delivery.attempts, 0);
        assert_eq!(notification.delivery.sent_at, None);
        let far = Instant::now().plus_seconds(30 * 86_400);
        assert!(store.due_notifications(far, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_receiver_that_never_acknowledges_is_given_up_when_the_window_closes() {
        // Given a receiver that always answers 500 and a retry window of 2 seconds
        let receiver = Receiver::start(SECRET, Behaviour::AlwaysFail).await;
        let store = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        let extra = [("WEBHOOK_GIVE_UP_SECONDS", "2")];
        let notifier =
            Notifier::new(store.clone(), settings(&receiver.url, SECRET, &extra)).unwrap();
        store.create(&created_now("0752538B")).await.unwrap();

        // When the notifier runs until the notification ends
        let notifications = rounds_until(&notifier, store.as_ref(), "0752538B", |n| {
            matches!(n[0].delivery.state, DeliveryState::GivenUp { .. })
        })
        .await;

        // Then it was tried several times under one id, and given up with the last error
        let delivery = &notifications[0].delivery;
        assert!(delivery.attempts >= 2, "{delivery:?}");
        assert_eq!(delivery.last_error.as_deref(), Some("HTTP 500"));
        let deliveries = receiver.deliveries();
        assert_eq!(deliveries.len(), delivery.attempts as usize);
        assert!(deliveries.iter().all(|d| d.id == deliveries[0].id));

        // And nothing is sent any more
        let round = notifier.deliver_due(100).await.unwrap();
        assert!(round.is_empty(), "{round:?}");
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_retried_and_its_url_stays_out_of_the_error() {
        // Given a webhook URL, with a token, on a port where nothing listens
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hooks?token=hunter2",
            closed.local_addr().unwrap()
        );
        drop(closed);
        let store = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        let notifier = Notifier::new(store.clone(), settings(&url, SECRET, &[])).unwrap();
        store.create(&created_now("6200001G")).await.unwrap();

        // When the notification is sent
        let round = notifier.deliver_due(100).await.expect("the store answers");

        // Then it will be retried, and the stored error names the cause, not the URL
        assert_eq!(round.retrying, 1, "{round:?}");
        let delivery = &notifications_of(store.as_ref(), "6200001G").await[0].delivery;
        let error = delivery.last_error.clone().unwrap_or_default();
        assert!(error.starts_with("connection failed"), "{error}");
        assert!(
            !error.contains("hunter2") && !error.contains("/hooks"),
            "{error}"
        );
    }
}

/// The two Lambdas' handlers on DynamoDB (moto), fed the events Lambda sends them.
mod lambdas {
    use super::*;
    use bcdi_shared::lambda::notifications::{handle_stream, sweep, StreamEvent};

    fn stream_event(name: &str) -> StreamEvent {
        let path = format!(
            "{}/fixtures/dynamodb-stream/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("fixture exists");
        serde_json::from_str(&text).expect("fixture is a DynamoDB stream event")
    }

    #[tokio::test]
    async fn the_stream_notifier_sends_the_new_status_event_of_its_batch_only() {
        // Given an establishment created in DynamoDB, and the stream batch its creation and a
        // first attempt produced: the record, the key entry, the event, the event's update
        let receiver = Receiver::start(SECRET, Behaviour::FailFirst(0)).await;
        let store = super::dynamodb::store().await;
        store
            .create(&new_establishment("0750655E", "stream"))
            .await
            .unwrap();
        let notifier = Notifier::new(store.clone(), settings(&receiver.url, SECRET, &[])).unwrap();

        // When the notifier handles the batch
        let round = handle_stream(&notifier, stream_event("new-establishment.json")).await;

        // Then it sent the status event's webhook, once, signed, and stored its acknowledgement
        assert_eq!(
            round,
            Round {
                acknowledged: 1,
                ..Round::default()
            }
        );
        let deliveries = receiver.deliveries();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].id, "evt_0750655E_1_1764763200");
        assert!(deliveries[0].signature_valid);
        assert_eq!(deliveries[0].json()["data"]["status"], "1");
        let notification = &notifications_of(store.as_ref(), "0750655E").await[0];
        assert!(notification.delivery.acknowledged_at().is_some());
    }

    #[tokio::test]
    async fn the_sweeper_retries_what_is_due_in_dynamodb_until_acknowledged() {
        // Given a receiver that fails the first delivery, and retries due at once
        let receiver = Receiver::start(SECRET, Behaviour::FailFirst(1)).await;
        let store = super::dynamodb::store().await;
        let extra = [
            ("WEBHOOK_RETRY_FIRST_SECONDS", "0"),
            ("WEBHOOK_RETRY_MAX_SECONDS", "0"),
        ];
        let notifier =
            Notifier::new(store.clone(), settings(&receiver.url, SECRET, &extra)).unwrap();
        store.create(&created_now("9740787M")).await.unwrap();

        // When the sweeper runs twice
        let first = sweep(&notifier).await.expect("the sweep runs");
        let second = sweep(&notifier).await.expect("the sweep runs");

        // Then the first failed and was rescheduled, the second was acknowledged, same id
        assert_eq!(first.retrying, 1, "{first:?}");
        assert_eq!(second.acknowledged, 1, "{second:?}");
        let deliveries = receiver.deliveries();
        let answers: Vec<u16> = deliveries.iter().map(|d| d.answered).collect();
        assert_eq!(answers, [500, 200]);
        assert_eq!(deliveries[0].id, deliveries[1].id);
        let delivery = &notifications_of(store.as_ref(), "9740787M").await[0].delivery;
        assert_eq!(delivery.attempts, 2);
        assert!(delivery.acknowledged_at().is_some());
    }
}
