//! `EstablishmentStore`: the shared suite on SQLite and on DynamoDB (moto), then what is
//! particular to each adapter.

mod sqlite {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{SystemTime, UNIX_EPOCH};

    use bcdi_hosting::sqlite::SqliteStore;
    use bcdi_shared::ports::EstablishmentStore;
    use bcdi_tests::store_suite::{self, key, Store};

    async fn store() -> Store {
        Arc::new(SqliteStore::in_memory().expect("an in-memory database"))
    }

    /// A store whose tables were dropped behind its back: every call fails inside SQLite.
    async fn broken_store() -> Store {
        let path = fresh_database_path("broken");
        let store = SqliteStore::open(&path).expect("the database opens");
        rusqlite::Connection::open(&path)
            .and_then(|other| other.execute_batch("DROP TABLE events; DROP TABLE establishments;"))
            .expect("the tables are dropped");
        Arc::new(store)
    }

    /// A path in a new directory under the system's temporary directory.
    fn fresh_database_path(purpose: &str) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let directory = format!(
            "bcdi-store-{purpose}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        std::env::temp_dir().join(directory).join("bcdi.sqlite3")
    }

    bcdi_tests::store_suite!(store, broken_store);

    #[tokio::test]
    async fn reopened_database_keeps_its_establishments() {
        // Given an establishment stored in a database file, then re-keyed
        let path = fresh_database_path("restart");
        let establishment = store_suite::establishment_with_every_field("0750655E", "before");
        {
            let store = SqliteStore::open(&path).expect("the database opens");
            store.create(&establishment).await.expect("it is created");
            store
                .replace_key(&establishment.rne, &key("before"), &key("after"))
                .await
                .expect("the key is replaced");
        }

        // When the server restarts on the same file
        let store = SqliteStore::open(&path).expect("the database opens again");

        // Then the record, its current key and its history are still there
        let record = store
            .get(&establishment.rne)
            .await
            .expect("the store answers");
        assert_eq!(record.map(|record| record.key_digest), Some(key("after")));
        assert_eq!(
            store
                .find_by_key(&key("after"))
                .await
                .expect("the store answers"),
            Some(establishment.rne.clone())
        );
        assert_eq!(
            store
                .find_by_key(&key("before"))
                .await
                .expect("the store answers"),
            None
        );
        assert_eq!(
            store
                .history(&establishment.rne)
                .await
                .expect("the store answers"),
            vec![establishment.first_event()]
        );
        if let Some(directory) = path.parent() {
            let _ = std::fs::remove_dir_all(directory);
        }
    }

    #[tokio::test]
    async fn a_second_store_on_the_same_file_is_refused_while_the_first_is_open() {
        // Given a store open on a database file, as a running server holds it
        let path = fresh_database_path("exclusive");
        let first = SqliteStore::open(&path).expect("the database opens");

        // When a second server opens the same file
        let refused = SqliteStore::open(&path)
            .err()
            .map(|error| error.to_string());

        // Then it is refused, saying why; once the first is closed, it opens
        let message = refused.expect("a second store on the same file is refused");
        assert!(message.contains("another process"), "{message}");
        drop(first);
        SqliteStore::open(&path).expect("the database opens once the first store is closed");
        if let Some(directory) = path.parent() {
            let _ = std::fs::remove_dir_all(directory);
        }
    }

    /// `get` answers from memory between writes: readers hammering one record while its key is
    /// replaced must never make a later `get` see a key older than the last replacement.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_get_after_a_write_always_sees_it_while_other_reads_race() {
        let path = fresh_database_path("coherent");
        let store = Arc::new(SqliteStore::open(&path).expect("the database opens"));
        let establishment = store_suite::establishment_with_every_field("0750655E", "0");
        store.create(&establishment).await.expect("it is created");
        let rne = establishment.rne.clone();

        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, rne, done) = (store.clone(), rne.clone(), done.clone());
                tokio::spawn(async move {
                    while !done.load(Ordering::Relaxed) {
                        store.get(&rne).await.expect("the store answers");
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();

        for round in 1..=1000 {
            let (previous, next) = (key(&(round - 1).to_string()), key(&round.to_string()));
            store
                .replace_key(&rne, &previous, &next)
                .await
                .expect("the key is replaced");
            let seen = store.get(&rne).await.expect("the store answers");
            assert!(
                seen.is_some_and(|record| record.key_digest == next),
                "round {round}: a get after the replacement saw an older key"
            );
        }
        done.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.await.expect("the reader ends");
        }
        drop(store);
        if let Some(directory) = path.parent() {
            let _ = std::fs::remove_dir_all(directory);
        }
    }

    /// The suite again on a database file, where `get`, `find_by_key` and `history` read on
    /// connections of their own: each read must still see every write committed before it.
    mod on_file {
        use super::*;

        async fn store() -> Store {
            Arc::new(SqliteStore::open(&fresh_database_path("suite")).expect("the database opens"))
        }

        bcdi_tests::store_suite!(store, broken_store);
    }
}

mod dynamodb {
    use std::sync::Arc;

    use aws_sdk_dynamodb::types::AttributeValue;
    use bcdi_shared::adapters::dynamodb::{create_table, DynamoDbStore, BY_STATUS_INDEX};
    use bcdi_shared::domain::{Instant, Status};
    use bcdi_shared::ports::EstablishmentStore;
    use bcdi_tests::moto;
    use bcdi_tests::store_suite::{self, Store};

    async fn store() -> Store {
        moto::dynamodb_store().await
    }

    /// A store on a table that was never created.
    async fn broken_store() -> Store {
        let table = moto::unique_table_name("missing");
        Arc::new(DynamoDbStore::new(moto::dynamodb_client().await, table))
    }

    bcdi_tests::store_suite!(store, broken_store);

    fn s(value: &str) -> AttributeValue {
        AttributeValue::S(value.to_owned())
    }

    #[tokio::test]
    async fn items_follow_the_single_table_layout() {
        // Given a table with one establishment
        let client = moto::dynamodb_client().await;
        let table = moto::unique_table_name("layout");
        create_table(&client, &table)
            .await
            .expect("the table is created");
        let store = DynamoDbStore::new(client.clone(), table.clone());
        let establishment = store_suite::new_establishment("0750655E", "layout");
        store.create(&establishment).await.expect("it is created");

        // Then the record, the key lookup entry and the event sit under the documented keys
        let get = |pk: String, sk: &str| {
            client
                .get_item()
                .table_name(&table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", s(sk))
                .send()
        };
        let record = get("EST#0750655E".to_owned(), "EST")
            .await
            .expect("GetItem")
            .item
            .expect("the record");
        assert_eq!(record.get("gsi1pk"), Some(&s("STATUS#1")));
        assert_eq!(record.get("gsi1sk"), Some(&s("001764763200#0750655E")));
        let lookup = get(
            format!("KEY#{}", store_suite::key("layout").to_hex()),
            "KEY",
        )
        .await
        .expect("GetItem")
        .item
        .expect("the key lookup entry");
        assert_eq!(lookup.get("rne"), Some(&s("0750655E")));
        let event = get("EST#0750655E".to_owned(), "EVENT#0000000001")
            .await
            .expect("GetItem")
            .item
            .expect("the first event");
        assert_eq!(event.get("status"), Some(&s("1")));
        assert_eq!(event.get("previous"), None);
    }

    #[tokio::test]
    async fn by_status_index_lists_one_status_oldest_change_first() {
        // Given establishments in E1 that failed at different times, and one still installing
        let client = moto::dynamodb_client().await;
        let table = moto::unique_table_name("by-status");
        create_table(&client, &table)
            .await
            .expect("the table is created");
        let store = DynamoDbStore::new(client.clone(), table.clone());
        for (rne, failed_at) in [("0752526N", 300), ("0752538B", 100), ("0160010Z", 200)] {
            let mut establishment = store_suite::new_establishment(rne, rne);
            establishment.status = Status::InstallFailed;
            establishment.status_changed_at =
                Instant::from_unix(store_suite::CREATED_AT + failed_at);
            establishment.next_step_at = None;
            store.create(&establishment).await.expect("it is created");
        }
        let installing = store_suite::new_establishment("9710002A", "installing");
        store.create(&installing).await.expect("it is created");

        // When the operators' listing queries the index for E1
        let listed = client
            .query()
            .table_name(&table)
            .index_name(BY_STATUS_INDEX)
            .key_condition_expression("gsi1pk = :status")
            .expression_attribute_values(":status", s("STATUS#E1"))
            .send()
            .await
            .expect("Query by_status");

        // Then it finds exactly those, oldest change first
        let rnes: Vec<&str> = listed
            .items()
            .iter()
            .filter_map(|item| item.get("rne")?.as_s().ok().map(String::as_str))
            .collect();
        assert_eq!(rnes, ["0752538B", "0160010Z", "0752526N"]);
    }
}
