//! Several instances on one PostgreSQL database, as behind a load balancer: what one
//! instance commits reaches the subscribers of every other exactly once and in order, jobs
//! are done once whichever instance claims them (even when the one that queued them is
//! killed), and a listening connection cut by the network loses nothing.
//!
//! The instances are real servers on loopback ports; two run in this process and, in the
//! kill test, one is a separate `caregraph` process killed with SIGKILL. On SQLite (one
//! instance by design) these tests say they were skipped; they run in the PostgreSQL pass.

use std::{collections::HashMap, net::SocketAddr, process::Stdio, time::Duration};

use caregraph::config::Config;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::{
    helpers::{Protocol, TEST_JWT_SECRET, TestApp, TestUser, WsClient, WsEvent, test_config},
    tcp_proxy::TcpProxy,
};

const SEND: &str = "mutation($s: UUID!, $b: String!, $c: String!) {
    sendMessage(input: {sessionId: $s, body: $b, clientMessageId: $c}) { seq cursor } }";
const MESSAGES: &str = "subscription($s: UUID!, $after: String) {
    messageAdded(sessionId: $s, after: $after) { seq body } }";

/// A fresh PostgreSQL configuration, or `None` (with a notice) when the tests run on SQLite.
async fn postgres_config() -> Option<Config> {
    let config = test_config().await;
    if config.database_url.expose().starts_with("postgres") {
        return Some(config);
    }
    eprintln!(
        "SKIPPED a multi-instance test: it needs PostgreSQL (TEST_DATABASE_URL=postgres://…); \
         it runs in the PostgreSQL pass of .ci/run"
    );
    None
}

/// Three instances on one database, sharing one manual clock.
async fn three(config: &Config) -> [TestApp; 3] {
    let first = TestApp::spawn_with(config.clone()).await;
    let clock = first.clock.clone();
    let second = TestApp::spawn_with_clock(config.clone(), clock.clone()).await;
    let third = TestApp::spawn_with_clock(config.clone(), clock).await;
    [first, second, third]
}

/// `sender` sends `body` on `app`; returns its seq and cursor.
async fn send(app: &TestApp, sender: &TestUser, session: &str, body: &str) -> (i64, String) {
    let sent = app
        .ok(
            sender,
            SEND,
            json!({ "s": session, "b": body, "c": uuid::Uuid::now_v7().to_string() }),
        )
        .await;
    let message = &sent["sendMessage"];
    (
        message["seq"].as_i64().expect("seq"),
        message["cursor"].as_str().expect("cursor").to_owned(),
    )
}

/// Reads `ws` until `done` says the results so far (by subscription id) are complete, or
/// fails after `wait`; then checks that nothing more comes for a moment (no duplicate, no
/// late extra).
async fn collect(
    ws: &mut WsClient,
    wait: Duration,
    done: impl Fn(&HashMap<String, Vec<Value>>) -> bool,
) -> HashMap<String, Vec<Value>> {
    let mut results: HashMap<String, Vec<Value>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    while !done(&results) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.next_event_within(left).await {
            Some(WsEvent::Message(message)) if message["type"] == "next" => {
                let id = message["id"].as_str().expect("id").to_owned();
                assert!(message["payload"].get("errors").is_none(), "{message}");
                results
                    .entry(id)
                    .or_default()
                    .push(message["payload"]["data"].clone());
            }
            other => panic!("expected results, got {other:?}; so far {results:?}"),
        }
    }
    ws.expect_silence(Duration::from_millis(300)).await;
    results
}

fn seqs(results: &HashMap<String, Vec<Value>>, id: &str) -> Vec<i64> {
    results.get(id).map_or_else(Vec::new, |items| {
        items
            .iter()
            .map(|item| item["messageAdded"]["seq"].as_i64().expect("seq"))
            .collect()
    })
}

#[tokio::test]
async fn a_sender_on_one_instance_reaches_subscribers_on_two_others_once_in_order() {
    let Some(config) = postgres_config().await else {
        return;
    };
    let [a, b, c] = three(&config).await;
    let recipient = a.register("CARE_RECIPIENT", "Olga").await;
    let caregiver = a.register("CAREGIVER", "Pavel").await;
    let (booking, session) = a.booking_chat(&recipient, &caregiver).await;
    a.act(&caregiver, "acceptBooking", &booking).await;
    let (_, first_cursor) = send(&a, &caregiver, &session, "hello").await;

    let newest = a.inbox(&recipient).await[0].clone();
    let inbox_head = newest["cursor"].clone();
    let mut on_b = b.ws_as(Protocol::TransportWs, &recipient).await;
    on_b.subscribe(
        "m",
        MESSAGES,
        json!({ "s": session, "after": first_cursor }),
    )
    .await;
    on_b.subscribe(
        "n",
        "subscription($after: String) { notificationAdded(after: $after) { id type } }",
        json!({ "after": inbox_head }),
    )
    .await;
    on_b.subscribe("u", "subscription { unreadNotificationCount }", json!({}))
        .await;
    let mut on_c = c.ws_as(Protocol::TransportWs, &caregiver).await;
    on_c.subscribe(
        "m",
        MESSAGES,
        json!({ "s": session, "after": first_cursor }),
    )
    .await;
    on_c.subscribe(
        "t",
        "subscription($s: UUID!) { typing(sessionId: $s) { user { id } typing } }",
        json!({ "s": session }),
    )
    .await;
    on_c.subscribe(
        "r",
        "subscription($s: UUID!) { messagesRead(sessionId: $s) { user { id } lastReadSeq } }",
        json!({ "s": session }),
    )
    .await;
    // Each count starts with its current value: once it came, the socket's subscriptions
    // before it listen.
    let first_count = collect(&mut on_b, Duration::from_secs(5), |r| r.contains_key("u")).await;
    let mut count = first_count["u"][0]["unreadNotificationCount"]
        .as_i64()
        .expect("a count");
    on_c.subscribe("u", "subscription { unreadNotificationCount }", json!({}))
        .await;
    collect(&mut on_c, Duration::from_secs(5), |r| r.contains_key("u")).await;

    // Forty messages through instance a, ten at a time (so several share a batch).
    for round in 0..4 {
        let bodies: Vec<String> = (0..10).map(|i| format!("m{round}-{i}")).collect();
        join_all(
            bodies
                .iter()
                .map(|body| send(&a, &caregiver, &session, body)),
        )
        .await;
    }
    let expected: Vec<i64> = (2..=41).collect();
    // What is stored: the recipient's notifications newer than the head the subscription
    // started after (the inbox lists the newest first), and the unread count.
    let mut stored: Vec<Value> = a
        .ok(
            &recipient,
            "{ notifications(first: 100) { edges { node { id } } } }",
            json!({}),
        )
        .await["notifications"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"]["id"].clone())
        .take_while(|id| *id != newest["id"])
        .collect();
    stored.reverse();
    assert!(!stored.is_empty(), "messages notify their recipient");
    let unread = a
        .ok(&recipient, "{ unreadNotificationCount }", json!({}))
        .await["unreadNotificationCount"]
        .as_i64()
        .expect("count");
    let counts_of = |results: &HashMap<String, Vec<Value>>| -> Vec<i64> {
        results.get("u").map_or_else(Vec::new, |items| {
            items
                .iter()
                .map(|item| item["unreadNotificationCount"].as_i64().expect("count"))
                .collect()
        })
    };
    let on_b_results = collect(&mut on_b, Duration::from_secs(10), |r| {
        seqs(r, "m").len() >= 40
            && r.get("n").map_or(0, Vec::len) >= stored.len()
            && counts_of(r).last() == Some(&unread)
    })
    .await;
    assert_eq!(
        seqs(&on_b_results, "m"),
        expected,
        "on b: every message once, in order"
    );
    let received: Vec<Value> = on_b_results["n"]
        .iter()
        .map(|item| item["notificationAdded"]["id"].clone())
        .collect();
    assert_eq!(received, stored, "every notification once, in stored order");
    for next in counts_of(&on_b_results) {
        assert!(next > count, "the count only rises here, each value once");
        count = next;
    }
    let on_c_results = collect(&mut on_c, Duration::from_secs(10), |r| {
        seqs(r, "m").len() >= 40
    })
    .await;
    assert_eq!(
        seqs(&on_c_results, "m"),
        expected,
        "on c: every message once, in order"
    );

    // Typing through a, seen on c; a receipt through b, seen on c.
    for typing in [true, false] {
        a.ok(
            &recipient,
            "mutation($s: UUID!, $t: Boolean!) { setTyping(sessionId: $s, typing: $t) }",
            json!({ "s": session, "t": typing }),
        )
        .await;
        let update = collect(&mut on_c, Duration::from_secs(5), |r| r.contains_key("t")).await;
        assert_eq!(update["t"].len(), 1, "{update:?}");
        assert_eq!(update["t"][0]["typing"]["typing"], typing);
        assert_eq!(
            update["t"][0]["typing"]["user"]["id"],
            recipient.id.as_str()
        );
    }
    b.ok(
        &recipient,
        "mutation($s: UUID!) { markMessagesRead(sessionId: $s, upToSeq: 41) { lastReadSeq } }",
        json!({ "s": session }),
    )
    .await;
    let receipt = collect(&mut on_c, Duration::from_secs(5), |r| r.contains_key("r")).await;
    assert_eq!(receipt["r"].len(), 1, "{receipt:?}");
    assert_eq!(receipt["r"][0]["messagesRead"]["lastReadSeq"], 41);
    assert_eq!(
        receipt["r"][0]["messagesRead"]["user"]["id"],
        recipient.id.as_str()
    );

    let metrics = reqwest::get(format!("http://{}/metrics", b.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("caregraph_event_bus_lag_seconds_count"),
        "the bus's lag is measured"
    );
    assert!(
        metrics.contains("caregraph_instance_info{instance=\""),
        "instances are told apart"
    );
}

#[tokio::test]
async fn a_reminder_due_while_three_instances_run_is_sent_once() {
    let Some(config) = postgres_config().await else {
        return;
    };
    let [a, b, c] = three(&config).await;
    let recipient = a.register("CARE_RECIPIENT", "Quirina").await;
    let caregiver = b.register("CAREGIVER", "Rui").await;
    let booking = c.book(&recipient, &caregiver, 3).await;
    b.act(&caregiver, "acceptBooking", &booking).await;
    a.clock
        .advance(chrono::Duration::hours(2) + chrono::Duration::minutes(1));
    for user in [&recipient, &caregiver] {
        a.expect_exactly(user, "BOOKING_STARTING_SOON", 1).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for user in [&recipient, &caregiver] {
        c.expect_exactly(user, "BOOKING_STARTING_SOON", 1).await;
    }
}

/// The address of the PostgreSQL server in `url` (`postgres://user@host:port/db…`).
fn server_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split('/').next().expect("a host");
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    host.parse().expect("a numeric host:port")
}

#[tokio::test]
async fn a_cut_listening_connection_resumes_with_no_gap() {
    let Some(config) = postgres_config().await else {
        return;
    };
    let url = config.database_url.expose().to_owned();
    let server = server_of(&url);
    let proxy = TcpProxy::start(server).await;
    let mut through_proxy = config.clone();
    through_proxy.event_bus_url = Some(
        url.replace(&server.to_string(), &proxy.addr.to_string())
            .into(),
    );
    let a = TestApp::spawn_with(config).await;
    let b = TestApp::spawn_with_clock(through_proxy, a.clock.clone()).await;
    assert_eq!(proxy.accepted(), 1, "b listens through the proxy");

    let recipient = a.register("CARE_RECIPIENT", "Sara").await;
    let caregiver = a.register("CAREGIVER", "Tomas").await;
    let (_, session) = a.booking_chat(&recipient, &caregiver).await;
    let (_, cursor) = send(&a, &caregiver, &session, "before").await;
    let mut on_b = b.ws_as(Protocol::TransportWs, &recipient).await;
    on_b.subscribe("m", MESSAGES, json!({ "s": session, "after": cursor }))
        .await;
    for i in 0..5 {
        send(&a, &caregiver, &session, &format!("live {i}")).await;
    }
    let live = collect(&mut on_b, Duration::from_secs(5), |r| {
        seqs(r, "m").len() >= 5
    })
    .await;
    assert_eq!(seqs(&live, "m"), (2..=6).collect::<Vec<_>>());

    // The network drops b's listening connection and keeps it down while a sends.
    proxy.cut();
    for i in 0..5 {
        send(&a, &caregiver, &session, &format!("while cut {i}")).await;
    }
    on_b.expect_silence(Duration::from_millis(300)).await;
    proxy.restore();
    let caught_up = collect(&mut on_b, Duration::from_secs(10), |r| {
        seqs(r, "m").len() >= 5
    })
    .await;
    assert_eq!(
        seqs(&caught_up, "m"),
        (7..=11).collect::<Vec<_>>(),
        "the gap, once, in order"
    );
    assert!(proxy.accepted() >= 2, "b listens again through the proxy");
    for i in 0..5 {
        send(&a, &caregiver, &session, &format!("after {i}")).await;
    }
    let after = collect(&mut on_b, Duration::from_secs(5), |r| {
        seqs(r, "m").len() >= 5
    })
    .await;
    assert_eq!(seqs(&after, "m"), (12..=16).collect::<Vec<_>>());
    let metrics = reqwest::get(format!("http://{}/metrics", b.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("caregraph_event_bus_reconnects_total"),
        "the reconnect is counted"
    );
}

/// A `caregraph` process of its own on `config`'s database, killed with SIGKILL when
/// dropped.
struct Process {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Process {
    async fn start(config: &Config, video_limit_seconds: u64) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_caregraph"))
            .env_clear()
            .env("DATABASE_URL", config.database_url.expose())
            .env("CAREGRAPH_ADDR", addr.to_string())
            .env("JWT_SECRET", TEST_JWT_SECRET)
            .env(
                "VIDEO_MAX_DURATION_SECONDS",
                video_limit_seconds.to_string(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("caregraph starts");
        let process = Self { child, addr };
        for _ in 0..200 {
            if reqwest::get(format!("http://{addr}/ready"))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the caregraph process never became ready on {addr}");
    }

    async fn ok(&self, user: &TestUser, query: &str, variables: Value) -> Value {
        let response: Value = reqwest::Client::new()
            .post(format!("http://{}/graphql", self.addr))
            .bearer_auth(&user.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
        assert!(response.get("errors").is_none(), "{response}");
        response["data"].clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_calls_limit_is_enforced_when_the_instance_that_started_it_is_sigkilled() {
    let Some(mut config) = postgres_config().await else {
        return;
    };
    let limit = 2;
    config.video.max_duration = Duration::from_secs(limit);
    let mut starter = Process::start(&config, limit).await;
    let b = TestApp::spawn_in_real_time(config.clone()).await;
    let c = TestApp::spawn_in_real_time(config).await;
    let recipient = b.register("CARE_RECIPIENT", "Ursula").await;
    let caregiver = c.register("CAREGIVER", "Vasco").await;
    let requested = starter
        .ok(
            &recipient,
            "mutation($c: UUID!) { requestVideoCall(input: {caregiverId: $c}) { id } }",
            json!({ "c": caregiver.id }),
        )
        .await;
    let id = requested["requestVideoCall"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut watching = c.ws_as(Protocol::TransportWs, &caregiver).await;
    watching
        .subscribe(
            "v",
            "subscription($id: UUID) { videoCallUpdated(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    starter
        .ok(
            &caregiver,
            "mutation($id: UUID!) { acceptVideoCall(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    let started = starter
        .ok(
            &recipient,
            "mutation($id: UUID!) { startVideoCall(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(started["startVideoCall"]["status"], "ACTIVE");
    starter.child.kill().expect("SIGKILL");
    starter.child.wait().expect("the process ended");

    let statuses = collect(&mut watching, Duration::from_secs(limit + 10), |r| {
        r.get("v").is_some_and(|items| {
            items
                .iter()
                .any(|item| item["videoCallUpdated"]["status"] == "COMPLETED")
        })
    })
    .await;
    let seen: Vec<&Value> = statuses["v"]
        .iter()
        .map(|item| &item["videoCallUpdated"]["status"])
        .collect();
    assert_eq!(
        seen,
        ["ACCEPTED", "ACTIVE", "COMPLETED"],
        "each change once, from whichever instance made it"
    );
    let call = b
        .ok(
            &recipient,
            "query($id: UUID!) { videoCall(id: $id) { status callEndedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(call["videoCall"]["status"], "COMPLETED");
    assert!(call["videoCall"]["callEndedAt"].is_string());
}
