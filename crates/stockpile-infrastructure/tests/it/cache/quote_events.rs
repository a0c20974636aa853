//! Quote changes between instances over Redis pub/sub, against a server of the test's own
//! (`CLIENT KILL TYPE pubsub` would cut every other test's subscriptions): a change published
//! by one instance reaches the others and not itself, and a killed subscription comes back.

use std::time::Duration;

use bb8_redis::redis;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use stockpile_application::ports::{QuoteChange, QuoteEvents};
use stockpile_domain::Ticker;
use stockpile_infrastructure::RedisQuoteEvents;

use super::support::{connect, settings, FaultProxy, RedisServer};

const PREFIX: &str = "stockpile-test:";

fn change(close: &str) -> QuoteChange {
    QuoteChange {
        ticker: Ticker::parse("AAPL").expect("a valid ticker"),
        summary: Some(Bytes::from(format!(
            r#"{{"ticker":"AAPL","price":{close}}}"#
        ))),
    }
}

async fn next(changes: &mut BoxStream<'static, QuoteChange>) -> Option<QuoteChange> {
    tokio::time::timeout(Duration::from_secs(2), changes.next())
        .await
        .ok()
        .flatten()
}

/// Subscribers of the quote channel, as Redis counts them.
async fn subscribers(url: &str) -> u64 {
    let mut conn = connect(url).await.expect("Redis answers");
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("{PREFIX}__quotes"))
        .query_async(&mut conn)
        .await
        .expect("PUBSUB NUMSUB");
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_the_other_instances_not_its_own_and_survives_a_killed_subscription() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let url = server.url();
    let a = RedisQuoteEvents::new(&settings(&url, PREFIX));
    let b = RedisQuoteEvents::new(&settings(&url, PREFIX));
    let (mut heard_by_a, mut heard_by_b) = (a.subscribe(), b.subscribe());
    assert!(
        stockpile_test_support::wait_until(Duration::from_secs(5), || async {
            subscribers(&url).await == 2
        })
        .await
    );

    a.publish(&change("1.5")).await.unwrap();
    let removal = QuoteChange {
        summary: None,
        ..change("0")
    };
    a.publish(&removal).await.unwrap();
    assert_eq!(next(&mut heard_by_b).await, Some(change("1.5")));
    assert_eq!(next(&mut heard_by_b).await, Some(removal));
    assert_eq!(
        next(&mut heard_by_a).await,
        None,
        "its own changes are not echoed"
    );

    let mut conn = connect(&url).await.unwrap();
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed, 2);
    assert!(
        stockpile_test_support::wait_until(Duration::from_secs(5), || async {
            subscribers(&url).await == 2
        })
        .await,
        "the subscriptions never came back"
    );
    b.publish(&change("2.5")).await.unwrap();
    assert_eq!(next(&mut heard_by_a).await, Some(change("2.5")));

    // A dropped stream unsubscribes.
    drop((heard_by_a, heard_by_b));
    b.publish(&change("3")).await.unwrap();
    assert!(
        stockpile_test_support::wait_until(Duration::from_secs(5), || async {
            subscribers(&url).await == 0
        })
        .await
    );
}

#[tokio::test]
async fn an_unreachable_redis_costs_one_write_a_timeout_not_every_write() {
    let hole = FaultProxy::black_hole().await;
    let events = RedisQuoteEvents::new(&settings(&hole.url(), PREFIX));
    let started = std::time::Instant::now();
    assert!(events.publish(&change("1")).await.is_err());
    let first = started.elapsed();
    assert!(
        first < Duration::from_secs(1),
        "bounded by the timeouts: {first:?}"
    );
    let started = std::time::Instant::now();
    for _ in 0..10 {
        assert!(events.publish(&change("1")).await.is_err());
    }
    assert!(
        started.elapsed() < Duration::from_millis(20),
        "later writes do not wait: {:?}",
        started.elapsed()
    );
}
