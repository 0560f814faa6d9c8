//! The promises of `JobStore`, written once and run against every adapter: `job_suite!` turns
//! each function below into one `#[tokio::test]` for a given store.

use std::collections::HashSet;
use std::sync::Arc;

use bcdi_shared::domain::{Instant, Rne};
use bcdi_shared::ports::jobs::job_key;
use bcdi_shared::ports::{JobKind, JobState, JobStore, Lease, NewJob, StoreError};
use serde_json::json;
use tokio::sync::Barrier;

pub type Jobs = Arc<dyn JobStore>;

/// One `#[tokio::test]` per function of this module, each on a new store from `$store` (an
/// async fn returning a `Jobs`). A function added to the module must be listed here too.
#[macro_export]
macro_rules! job_suite {
    ($store:path) => {
        $crate::job_suite!(@each $store;
            enqueued_job_is_claimed_with_its_input_and_token,
            nothing_to_claim_gives_none,
            claim_takes_only_the_kinds_asked_for,
            oldest_job_is_claimed_first,
            leased_job_is_not_claimed_again_while_its_lease_lives,
            lapsed_lease_hands_the_job_out_again_under_a_new_lease,
            renew_extends_only_the_live_lease,
            finish_ends_the_job_once_and_only_for_its_lease,
            finished_job_is_never_claimed_again,
            enqueue_with_the_same_token_changes_nothing,
            enqueue_with_a_new_token_requeues_the_job,
            cancel_ends_queued_and_leased_jobs_but_not_finished_ones,
            concurrent_claims_lease_each_job_once,
        );
    };
    (@each $store:path; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::job_suite::$name($store().await).await;
            }
        )*
    };
}

/// 2025-12-03T12:00:00Z.
const T0: i64 = 1_764_763_200;

fn at(seconds: i64) -> Instant {
    Instant::from_unix(T0 + seconds)
}

fn job(rne: &str, kind: JobKind, attempt: u32, token: &str, created: i64) -> NewJob {
    let rne = Rne::parse(rne).expect("a valid RNE");
    NewJob {
        key: job_key(&rne, kind, attempt),
        kind,
        input: json!({"rne": rne.as_str(), "griffe": "Collège « Jean-Moulin »", "n": attempt}),
        rne,
        task_token: token.to_owned(),
        created_at: at(created),
    }
}

fn lease(expires: i64) -> Lease {
    Lease::new(at(expires))
}

pub async fn enqueued_job_is_claimed_with_its_input_and_token(jobs: Jobs) {
    // Given an install job
    let new = job("0750655E", JobKind::Install, 1, "token-1", 0);
    jobs.enqueue(&new).await.expect("enqueued");

    // When an agent claims installs
    let lease = lease(60);
    let claimed = jobs
        .claim(&[JobKind::Install], &lease, at(1))
        .await
        .expect("the store answers")
        .expect("a job");

    // Then it gets that job, leased to it, with its input and token
    assert_eq!(claimed.key, "0750655E-install-1");
    assert_eq!(claimed.kind, JobKind::Install);
    assert_eq!(claimed.rne, new.rne);
    assert_eq!(claimed.input, new.input);
    assert_eq!(claimed.task_token, "token-1");
    assert_eq!(claimed.state, JobState::Leased);
    assert_eq!(claimed.lease, Some(lease.clone()));
    assert_eq!(claimed.created_at, at(0));
    assert_eq!(claimed.finished_at, None);
    let stored = jobs.get(&new.key).await.expect("the store answers");
    assert_eq!(stored, Some(claimed));
}

pub async fn nothing_to_claim_gives_none(jobs: Jobs) {
    assert!(jobs
        .claim(&JobKind::ALL, &lease(60), at(0))
        .await
        .expect("the store answers")
        .is_none());
    assert!(jobs
        .get("0750655E-install-1")
        .await
        .expect("the store answers")
        .is_none());
}

pub async fn claim_takes_only_the_kinds_asked_for(jobs: Jobs) {
    // Given a mount job only
    jobs.enqueue(&job("0750655E", JobKind::Mount, 1, "t", 0))
        .await
        .expect("enqueued");

    // When an agent asks for installs, nothing; for mounts, the job
    assert!(jobs
        .claim(&[JobKind::Install], &lease(60), at(1))
        .await
        .expect("the store answers")
        .is_none());
    let claimed = jobs
        .claim(&[JobKind::Install, JobKind::Mount], &lease(60), at(1))
        .await
        .expect("the store answers")
        .expect("a job");
    assert_eq!(claimed.kind, JobKind::Mount);
}

pub async fn oldest_job_is_claimed_first(jobs: Jobs) {
    // Given jobs created at different times, of both kinds
    jobs.enqueue(&job("0752526N", JobKind::Install, 1, "a", 30))
        .await
        .expect("enqueued");
    jobs.enqueue(&job("0752538B", JobKind::Mount, 1, "b", 10))
        .await
        .expect("enqueued");
    jobs.enqueue(&job("0160010Z", JobKind::Install, 1, "c", 20))
        .await
        .expect("enqueued");

    // When an agent claims three times
    let mut order = Vec::new();
    for _ in 0..3 {
        let claimed = jobs
            .claim(&JobKind::ALL, &lease(600), at(100))
            .await
            .expect("the store answers")
            .expect("a job");
        order.push(claimed.rne.to_string());
    }

    // Then the longest waiting came first
    assert_eq!(order, ["0752538B", "0160010Z", "0752526N"]);
}

pub async fn leased_job_is_not_claimed_again_while_its_lease_lives(jobs: Jobs) {
    jobs.enqueue(&job("0750655E", JobKind::Install, 1, "t", 0))
        .await
        .expect("enqueued");
    jobs.claim(&JobKind::ALL, &lease(60), at(1))
        .await
        .expect("the store answers")
        .expect("a job");
    assert!(jobs
        .claim(&JobKind::ALL, &lease(120), at(59))
        .await
        .expect("the store answers")
        .is_none());
}

pub async fn lapsed_lease_hands_the_job_out_again_under_a_new_lease(jobs: Jobs) {
    // Given a job whose first agent's lease lapsed at 60
    let new = job("0750655E", JobKind::Install, 1, "t", 0);
    jobs.enqueue(&new).await.expect("enqueued");
    let first = lease(60);
    jobs.claim(&JobKind::ALL, &first, at(1))
        .await
        .expect("the store answers")
        .expect("a job");

    // When another agent claims after that
    let second = lease(200);
    let claimed = jobs
        .claim(&JobKind::ALL, &second, at(60))
        .await
        .expect("the store answers")
        .expect("the job again");

    // Then it holds the job under a new lease, and the first lease can do nothing
    assert_eq!(claimed.key, new.key);
    assert_eq!(claimed.lease, Some(second.clone()));
    assert_ne!(first.id, second.id);
    assert!(claimed.is_leased_by(&second.id, at(61)));
    assert!(!claimed.is_leased_by(&first.id, at(61)));
    assert!(matches!(
        jobs.renew(&new.key, &first.id, at(61), at(300)).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        jobs.finish(&new.key, &first.id, JobState::Succeeded, at(61))
            .await,
        Err(StoreError::Conflict)
    ));
    let stored = jobs.get(&new.key).await.expect("the store answers");
    assert_eq!(stored.and_then(|job| job.lease), Some(second));
}

pub async fn renew_extends_only_the_live_lease(jobs: Jobs) {
    // Given a leased job
    let new = job("0750655E", JobKind::Mount, 2, "t", 0);
    jobs.enqueue(&new).await.expect("enqueued");
    let held = lease(60);
    jobs.claim(&JobKind::ALL, &held, at(1))
        .await
        .expect("the store answers")
        .expect("a job");

    // When its agent renews before expiry, the lease moves and the job stays its own
    jobs.renew(&new.key, &held.id, at(50), at(110))
        .await
        .expect("renewed");
    assert!(jobs
        .claim(&JobKind::ALL, &lease(500), at(100))
        .await
        .expect("the store answers")
        .is_none());
    let stored = jobs
        .get(&new.key)
        .await
        .expect("the store answers")
        .expect("the job");
    assert_eq!(stored.lease.map(|lease| lease.expires_at), Some(at(110)));

    // But a renewal after expiry, or with another lease id, conflicts
    assert!(matches!(
        jobs.renew(&new.key, &held.id, at(110), at(200)).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        jobs.renew(&new.key, "not-the-lease", at(60), at(200)).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        jobs.renew("0750655E-mount-9", &held.id, at(60), at(200))
            .await,
        Err(StoreError::Conflict)
    ));
}

pub async fn finish_ends_the_job_once_and_only_for_its_lease(jobs: Jobs) {
    let new = job("0750655E", JobKind::Install, 1, "t", 0);
    jobs.enqueue(&new).await.expect("enqueued");
    let held = lease(60);
    jobs.claim(&JobKind::ALL, &held, at(1))
        .await
        .expect("the store answers")
        .expect("a job");

    assert!(matches!(
        jobs.finish(&new.key, "another", JobState::Succeeded, at(5))
            .await,
        Err(StoreError::Conflict)
    ));
    jobs.finish(&new.key, &held.id, JobState::Failed, at(5))
        .await
        .expect("finished");
    assert!(matches!(
        jobs.finish(&new.key, &held.id, JobState::Succeeded, at(6))
            .await,
        Err(StoreError::Conflict)
    ));
    let stored = jobs
        .get(&new.key)
        .await
        .expect("the store answers")
        .expect("the job");
    assert_eq!(stored.state, JobState::Failed);
    assert_eq!(stored.finished_at, Some(at(5)));
    assert!(!stored.is_leased_by(&held.id, at(6)));
}

pub async fn finished_job_is_never_claimed_again(jobs: Jobs) {
    let new = job("0750655E", JobKind::Install, 1, "t", 0);
    jobs.enqueue(&new).await.expect("enqueued");
    let held = lease(60);
    jobs.claim(&JobKind::ALL, &held, at(1))
        .await
        .expect("the store answers")
        .expect("a job");
    jobs.finish(&new.key, &held.id, JobState::Succeeded, at(2))
        .await
        .expect("finished");
    assert!(jobs
        .claim(&JobKind::ALL, &lease(1000), at(900))
        .await
        .expect("the store answers")
        .is_none());
}

pub async fn enqueue_with_the_same_token_changes_nothing(jobs: Jobs) {
    // Given a job leased to an agent
    let new = job("0750655E", JobKind::Install, 1, "same", 0);
    jobs.enqueue(&new).await.expect("enqueued");
    let held = lease(60);
    let claimed = jobs
        .claim(&JobKind::ALL, &held, at(1))
        .await
        .expect("the store answers")
        .expect("a job");

    // When the step that created it runs again with the same token
    let mut again = new.clone();
    again.created_at = at(5);
    jobs.enqueue(&again).await.expect("enqueued again");

    // Then the agent keeps it, untouched
    assert_eq!(
        jobs.get(&new.key).await.expect("the store answers"),
        Some(claimed)
    );
}

pub async fn enqueue_with_a_new_token_requeues_the_job(jobs: Jobs) {
    // Given a job leased to an agent
    let new = job("0750655E", JobKind::Mount, 1, "old-token", 0);
    jobs.enqueue(&new).await.expect("enqueued");
    let held = lease(60);
    jobs.claim(&JobKind::ALL, &held, at(1))
        .await
        .expect("the store answers")
        .expect("a job");

    // When the workflow retried the step, which created it again with a new token
    let mut retried = new.clone();
    retried.task_token = "new-token".to_owned();
    retried.input = json!({"retried": true});
    retried.created_at = at(10);
    jobs.enqueue(&retried).await.expect("enqueued again");

    // Then the old lease is void and the next claim gets the new token and input
    assert!(matches!(
        jobs.renew(&new.key, &held.id, at(11), at(100)).await,
        Err(StoreError::Conflict)
    ));
    let claimed = jobs
        .claim(&JobKind::ALL, &lease(100), at(11))
        .await
        .expect("the store answers")
        .expect("the job again");
    assert_eq!(claimed.task_token, "new-token");
    assert_eq!(claimed.input, json!({"retried": true}));
}

pub async fn cancel_ends_queued_and_leased_jobs_but_not_finished_ones(jobs: Jobs) {
    // Given a queued job, a leased one and a finished one
    let finished = job("0160010Z", JobKind::Install, 1, "c", 0);
    let leased = job("0752538B", JobKind::Install, 1, "b", 1);
    let queued = job("0752526N", JobKind::Install, 1, "a", 2);
    for new in [&finished, &leased, &queued] {
        jobs.enqueue(new).await.expect("enqueued");
    }
    let done = lease(60);
    jobs.claim(&JobKind::ALL, &done, at(3))
        .await
        .expect("the store answers")
        .expect("the oldest");
    jobs.finish(&finished.key, &done.id, JobState::Succeeded, at(4))
        .await
        .expect("finished");
    let held = lease(60);
    jobs.claim(&JobKind::ALL, &held, at(5))
        .await
        .expect("the store answers")
        .expect("the next");

    // When each is cancelled (twice), and an unknown one
    for key in [&queued.key, &leased.key, &finished.key, &queued.key] {
        jobs.cancel(key, at(6)).await.expect("cancelled");
    }
    jobs.cancel("0750655E-mount-3", at(6))
        .await
        .expect("nothing to cancel");

    // Then the unfinished ones are cancelled and unclaimable, the finished one unchanged
    let state = |key: String| {
        let jobs = Arc::clone(&jobs);
        async move {
            jobs.get(&key)
                .await
                .expect("the store answers")
                .map(|job| job.state)
        }
    };
    assert_eq!(state(queued.key.clone()).await, Some(JobState::Cancelled));
    assert_eq!(state(leased.key.clone()).await, Some(JobState::Cancelled));
    assert_eq!(state(finished.key.clone()).await, Some(JobState::Succeeded));
    assert!(matches!(
        jobs.finish(&leased.key, &held.id, JobState::Succeeded, at(7))
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(jobs
        .claim(&JobKind::ALL, &lease(1000), at(500))
        .await
        .expect("the store answers")
        .is_none());
}

pub async fn concurrent_claims_lease_each_job_once(jobs: Jobs) {
    // Given three jobs and eight agents claiming at once
    const AGENTS: usize = 8;
    for (i, rne) in ["0752526N", "0752538B", "0160010Z"].iter().enumerate() {
        jobs.enqueue(&job(rne, JobKind::Install, 1, rne, i as i64))
            .await
            .expect("enqueued");
    }
    let barrier = Arc::new(Barrier::new(AGENTS));
    let claims = (0..AGENTS).map(|_| {
        let jobs = Arc::clone(&jobs);
        let barrier = Arc::clone(&barrier);
        tokio::spawn(async move {
            barrier.wait().await;
            jobs.claim(&JobKind::ALL, &lease(60), at(10)).await
        })
    });
    let results = futures::future::join_all(claims).await;

    // Then each job went to exactly one agent
    let mut keys = Vec::new();
    for result in results {
        if let Some(job) = result.expect("no panic").expect("the store answers") {
            keys.push(job.key);
        }
    }
    let distinct: HashSet<_> = keys.iter().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(distinct.len(), 3, "{keys:?}");
}
