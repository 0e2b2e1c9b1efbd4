//! A slow, absent or locked database: every client hears a retryable `SERVICE_UNAVAILABLE`
//! (or 503, or close 1013) within seconds, never a hang and never `UNAUTHENTICATED`, and the
//! same server serves again once the database is back.
//!
//! On PostgreSQL the server reaches the database through a proxy in this file, which the
//! tests switch between passing, dropping every connection, and swallowing every byte; the
//! shared cluster itself is never touched.

use std::{
    future::Future,
    net::SocketAddr,
    time::{Duration, Instant},
};

use caregraph::config::Config;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::helpers::{Protocol, TestApp, TestUser, WsEvent, data, error_code, test_config};

/// What a client may wait at most for any answer while the database is away.
const BOUND: Duration = Duration::from_secs(3);

const ME: &str = "{ me { id displayName } }";
const RENAME: &str =
    "mutation($name: String!) { updateProfile(input: {displayName: $name}) { displayName } }";
const REGISTER: &str = "mutation($email: String!) { register(input: {email: $email, password: \"correct horse\", displayName: \"Late\", role: CARE_RECIPIENT}) { token } }";

/// How the proxy treats connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Relays both ways, as if the server were direct.
    Pass,
    /// Drops every open connection and every new one at once: a database that is down.
    Down,
    /// Accepts connections but never relays a byte, and freezes the open ones: a database
    /// (or network) that went silent.
    BlackHole,
}

/// A TCP proxy in front of the test cluster.
struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, watching) = watch::channel(Mode::Pass);
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = watching.clone();
                let now = *mode.borrow();
                match now {
                    Mode::Down => drop(client),
                    Mode::BlackHole => {
                        tokio::spawn(hold_while_black_hole(client, mode));
                    }
                    Mode::Pass => {
                        tokio::spawn(relay(client, upstream, mode));
                    }
                }
            }
        });
        Proxy {
            addr,
            mode,
            accepting,
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        _ = mode.wait_for(|mode| *mode != Mode::Pass) => {}
    }
    if *mode.borrow() == Mode::BlackHole {
        let _ = mode.wait_for(|mode| *mode != Mode::BlackHole).await;
    }
}

/// Keeps the socket open, saying nothing, until the black hole ends; then drops it, as the
/// network would once it recovered and the peer had long given up.
async fn hold_while_black_hole(client: TcpStream, mut mode: watch::Receiver<Mode>) {
    let _ = mode.wait_for(|mode| *mode != Mode::BlackHole).await;
    drop(client);
}

/// A test configuration whose PostgreSQL database is reached through a new proxy;
/// `None` on SQLite.
async fn behind_proxy() -> Option<(Config, Proxy)> {
    let mut config = test_config().await;
    let rest = config.database_url.expose().strip_prefix("postgres")?;
    let (scheme, rest) = rest.split_once("://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (format!("{user}@"), host_port),
        None => (String::new(), authority),
    };
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let upstream = tokio::net::lookup_host(host_port)
        .await
        .expect("resolve the test cluster")
        .next()
        .expect("an address for the test cluster");
    let proxy = Proxy::start(upstream).await;
    config.database_url = format!("postgres{scheme}://{user}{}/{path}", proxy.addr).into();
    Some((config, proxy))
}

/// Runs `answer`, failing unless it finishes within [`BOUND`].
async fn within_bound<T>(what: &str, answer: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let answered = tokio::time::timeout(BOUND, answer)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}"));
    eprintln!("{what}: answered in {:?}", started.elapsed());
    answered
}

/// Asserts a retryable `SERVICE_UNAVAILABLE`.
fn assert_unavailable(what: &str, response: &Value) {
    assert_eq!(
        error_code(response),
        "SERVICE_UNAVAILABLE",
        "{what}: {response}"
    );
    assert_eq!(
        response["errors"][0]["extensions"]["retryable"], true,
        "{what}: {response}"
    );
}

/// Asserts that `user` can change their name again: writes work.
async fn renames(app: &TestApp, user: &TestUser) {
    let renamed = app
        .graphql(
            Some(&user.token),
            RENAME,
            json!({ "name": "Renamed after" }),
        )
        .await;
    assert_eq!(
        data(renamed)["updateProfile"]["displayName"],
        "Renamed after"
    );
}

async fn health(app: &TestApp) -> (u16, Value) {
    probe(app, "health").await
}

/// `GET /<path>`: its status and JSON body.
async fn probe(app: &TestApp, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("http://{}/{path}", app.addr))
        .await
        .expect("the probe answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("health JSON"))
}

/// What a client sees on a socket whose `connection_init` carries `user`'s token.
async fn ws_init(app: &TestApp, user: &TestUser) -> WsEvent {
    let mut ws = app.ws(Protocol::TransportWs).await;
    ws.send_init(json!({ "Authorization": format!("Bearer {}", user.token) }))
        .await;
    ws.next_event().await
}

/// Everything a client does during an outage of kind `mode`, then the recovery.
async fn survives(mode: Mode) {
    let Some((config, proxy)) = behind_proxy().await else {
        return;
    };
    let app = TestApp::spawn_with(config).await;
    // `seen` has been authenticated by this server before the outage; `unseen` has not.
    let seen = app.register("CARE_RECIPIENT", "Seen").await;
    let unseen = app.register("CARE_RECIPIENT", "Unseen").await;
    assert_eq!(
        data(app.graphql(Some(&seen.token), ME, json!({})).await)["me"]["id"],
        seen.id.as_str()
    );
    let late_email = format!("late-{}@example.com", uuid::Uuid::now_v7().simple());

    proxy.set(mode);
    let response = within_bound("query", app.graphql(Some(&seen.token), ME, json!({}))).await;
    assert_unavailable("query", &response);
    let rename = json!({ "name": "Renamed in the outage" });
    let response = within_bound("mutation", app.graphql(Some(&seen.token), RENAME, rename)).await;
    assert_unavailable("mutation", &response);
    let response = within_bound(
        "register",
        app.graphql(None, REGISTER, json!({ "email": late_email })),
    )
    .await;
    assert_unavailable("register", &response);
    let (status, body) = within_bound("health", health(&app)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    let (status, body) = within_bound("ready", probe(&app, "ready")).await;
    assert_eq!((status, &body["status"]), (503, &json!("unavailable")));
    match within_bound("connection_init", ws_init(&app, &unseen)).await {
        WsEvent::Closed(code, _) => assert_eq!(code, 1013),
        other => panic!("expected close 1013, got {other:?}"),
    }

    // Past the user cache's lifetime, neither user is told to sign in again.
    app.clock.advance(chrono::Duration::minutes(5));
    for (who, user) in [("seen", &seen), ("unseen", &unseen)] {
        let response = within_bound(who, app.graphql(Some(&user.token), ME, json!({}))).await;
        assert_unavailable(who, &response);
    }
    match within_bound("stale connection_init", ws_init(&app, &seen)).await {
        WsEvent::Message(message) => assert_eq!(message["type"], "connection_ack"),
        other => panic!("a user found before keeps their socket, got {other:?}"),
    }

    proxy.set(Mode::Pass);
    let deadline = Instant::now() + Duration::from_secs(10);
    let me = loop {
        let response = app.graphql(Some(&seen.token), ME, json!({})).await;
        if response.get("errors").is_none() || Instant::now() > deadline {
            break data(response);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        me["me"]["displayName"], "Seen",
        "the refused rename left nothing"
    );
    data(app.graphql(Some(&unseen.token), ME, json!({})).await);
    renames(&app, &seen).await;
    // The registration refused during the outage left no account behind.
    data(
        app.graphql(None, REGISTER, json!({ "email": late_email }))
            .await,
    );
    let (status, body) = health(&app).await;
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    let (status, body) = probe(&app, "ready").await;
    assert_eq!((status, &body["status"]), (200, &json!("ready")));
}

#[tokio::test]
async fn a_database_that_is_down_is_reported_fast_and_recovered_from() {
    survives(Mode::Down).await;
}

#[tokio::test]
async fn a_database_that_went_silent_is_reported_fast_and_recovered_from() {
    survives(Mode::BlackHole).await;
}

/// Whether a socket whose `connection_init` carries `user`'s token is accepted.
async fn acked(app: &TestApp, user: &TestUser) -> bool {
    match ws_init(app, user).await {
        WsEvent::Message(message) => message["type"] == "connection_ack",
        WsEvent::Closed(..) => false,
    }
}

/// A regular user found before a crowd of newcomers, more than the known-users cache holds
/// and each seen once, is still remembered afterwards: through an outage they keep their
/// socket, while the cache still holds no more users than its capacity. A cache that starts
/// over when full would have forgotten the regular user with everyone else.
#[tokio::test]
async fn a_crowd_of_new_users_does_not_make_the_server_forget_a_regular_one() {
    const CAPACITY: usize = 8;
    let Some((mut config, proxy)) = behind_proxy().await else {
        return;
    };
    config.auth.known_users_capacity = CAPACITY;
    let app = TestApp::spawn_with(config).await;
    let regular = app.register("CARE_RECIPIENT", "Regular").await;
    for _ in 0..3 {
        let me = data(app.graphql(Some(&regular.token), ME, json!({})).await);
        assert_eq!(me["me"]["id"], regular.id.as_str());
    }
    let mut crowd = Vec::new();
    for _ in 0..3 * CAPACITY {
        let newcomer = app.register("CARE_RECIPIENT", "Newcomer").await;
        data(app.graphql(Some(&newcomer.token), ME, json!({})).await);
        crowd.push(newcomer);
    }

    proxy.set(Mode::Down);
    assert!(
        within_bound("regular", acked(&app, &regular)).await,
        "the regular user was forgotten"
    );
    app.clock.advance(chrono::Duration::minutes(5));
    assert!(
        within_bound("stale regular", acked(&app, &regular)).await,
        "the regular user was forgotten"
    );
    let remembered = within_bound(
        "crowd",
        futures_util::future::join_all(crowd.iter().map(|newcomer| acked(&app, newcomer))),
    )
    .await;
    let remembered = remembered.into_iter().filter(|acked| *acked).count();
    assert!(
        remembered < CAPACITY,
        "{remembered} newcomers remembered beside the regular user, over {CAPACITY}"
    );
}

/// Another process's transaction on the same SQLite file, holding the write lock.
async fn write_lock_holder(url: &str) -> (DatabaseConnection, sea_orm::DatabaseTransaction) {
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    let other = Database::connect(options).await.expect("second connection");
    let txn = other
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
        .expect("BEGIN IMMEDIATE");
    (other, txn)
}

#[tokio::test]
async fn a_locked_sqlite_file_refuses_writes_fast_and_keeps_serving_reads() {
    let config = test_config().await;
    if !config.database_url.expose().starts_with("sqlite:") {
        return;
    }
    let url = config.database_url.expose().to_owned();
    let app = TestApp::spawn_with(config).await;
    let user = app.register("CARE_RECIPIENT", "Locked").await;

    let (_other, lock) = write_lock_holder(&url).await;
    let rename = json!({ "name": "Renamed while locked" });
    let response = within_bound(
        "locked mutation",
        app.graphql(Some(&user.token), RENAME, rename),
    )
    .await;
    assert_unavailable("locked mutation", &response);
    let me = within_bound("read", app.graphql(Some(&user.token), ME, json!({}))).await;
    assert_eq!(data(me)["me"]["displayName"], "Locked");

    lock.rollback().await.expect("release the lock");
    renames(&app, &user).await;
}

#[tokio::test]
async fn a_statement_that_outlives_the_statement_timeout_is_unavailable() {
    let config = test_config().await;
    if !config.database_url.expose().starts_with("postgres") {
        return;
    }
    let app = caregraph::startup::Application::build(config)
        .await
        .expect("application builds");
    let slow = app
        .services()
        .state
        .db
        .execute_unprepared("SELECT pg_sleep(10)");
    let err = within_bound("slow statement", slow)
        .await
        .expect_err("the server cancels the statement");
    assert_eq!(
        caregraph::error::AppError::from(err).code(),
        "SERVICE_UNAVAILABLE"
    );
}
