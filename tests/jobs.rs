//! `JobStore`: the shared suite on SQLite and on DynamoDB (moto).

mod sqlite {
    use std::sync::Arc;

    use bcdi_hosting::sqlite::SqliteStore;
    use bcdi_tests::job_suite::Jobs;

    async fn store() -> Jobs {
        Arc::new(SqliteStore::in_memory().expect("an in-memory database"))
    }

    bcdi_tests::job_suite!(store);
}

mod dynamodb {
    use std::sync::Arc;

    use bcdi_shared::adapters::dynamodb::{create_table, DynamoDbStore};
    use bcdi_tests::job_suite::Jobs;
    use bcdi_tests::moto;

    async fn store() -> Jobs {
        let client = moto::dynamodb_client().await;
        let table = moto::unique_table_name("jobs");
        create_table(&client, &table)
            .await
            .unwrap_or_else(|error| panic!("creating table {table} on moto: {error}"));
        Arc::new(DynamoDbStore::new(client, table))
    }

    bcdi_tests::job_suite!(store);
}
