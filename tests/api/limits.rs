//! The bounds on one request: what a query may cost, how large and slow a request may be,
//! and what a production server shows of itself. Each refusal is GraphQL-shaped JSON with
//! a code that names the limit, and a well-behaved request next to it is unaffected.

use std::time::{Duration, Instant};

use caregraph::config::{Config, Environment};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, TestUser, error_code, nodes, test_config};

const SERIES: &str =
    "mutation($input: CreateBookingInput!) { createBooking(input: $input) { id } }";

/// A care recipient with a weekly series of `count` bookings with a caregiver.
async fn with_series(app: &TestApp, count: u32) -> TestUser {
    let recipient = app.register("CARE_RECIPIENT", "Rita").await;
    let caregiver = app.register("CAREGIVER", "Sara").await;
    let (starts, ends) = app.clock_after_hours(24);
    app.ok(
        &recipient,
        SERIES,
        json!({ "input": { "caregiverId": caregiver.id, "startsAt": starts, "endsAt": ends,
            "recurrence": { "frequency": "WEEKLY", "count": count } } }),
    )
    .await;
    recipient
}

/// A raw HTTP request to the server, returning the status and the JSON body.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("HTTP {status} answered with a body that is not JSON: {text}"));
    (status, body)
}

fn graphql_url(app: &TestApp) -> String {
    format!("http://{}/graphql", app.addr)
}

const SEND_MESSAGE: &str =
    "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id seq body } }";
const HISTORY: &str = "query($id: UUID!) {
    chatSession(id: $id) { messages(last: 50) { edges { node { body } } } } }";

#[tokio::test]
async fn nested_lists_are_counted_at_their_length_and_loaded_in_batches() {
    let app = TestApp::spawn().await;
    let recipient = with_series(&app, 104).await;

    let nested = "{ bookings(first: 100) { nodes { series { occurrences { series { occurrences {
        series { occurrences { id } } } } } } } } }";
    let started = Instant::now();
    let response = app.graphql(Some(&recipient.token), nested, json!({})).await;
    assert_eq!(error_code(&response), "QUERY_TOO_COMPLEX", "{response}");
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("at most 5000"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused before any work"
    );

    // One level of a page of 20 series costs 20 × 107: allowed, and each occurrence list is whole.
    let allowed = app
        .ok(
            &recipient,
            "{ bookings(first: 20) { nodes { id series { occurrences { id } } } } }",
            json!({}),
        )
        .await;
    let nodes = allowed["bookings"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 20);
    let first_series = &nodes[0]["series"]["occurrences"];
    assert_eq!(first_series.as_array().unwrap().len(), 104);
    for node in nodes {
        assert_eq!(&node["series"]["occurrences"], first_series);
    }
}

/// A server whose users each have a query-cost allowance of 5,000, refilling at one a second.
async fn spawn_with_cost_allowance() -> TestApp {
    let mut config = test_config().await;
    config.usage.cost = caregraph::config::RateConfig {
        burst: 5_000,
        period: Duration::from_secs(1),
    };
    TestApp::spawn_with(config).await
}

#[tokio::test]
async fn each_user_spends_query_cost_from_an_allowance_that_refills() {
    let app = spawn_with_cost_allowance().await;
    let spender = with_series(&app, 104).await;
    let bystander = app.register("CARE_RECIPIENT", "Yara").await;

    // 40 bookings × (node + series + 104 occurrences × id): about 4,300 of the 5,000.
    let costly = "{ bookings(first: 40) { nodes { series { occurrences { id } } } } }";
    app.ok(&spender, costly, json!({})).await;
    let response = app.graphql(Some(&spender.token), costly, json!({})).await;
    assert_eq!(error_code(&response), "RATE_LIMITED", "{response}");
    let retry_after = response["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .expect("when to retry");
    assert!((3_000..=5_000).contains(&retry_after), "{retry_after}");

    // Another user's allowance is their own.
    app.ok(&bystander, costly, json!({})).await;
    // Once the allowance has refilled (and the refused attempts' own charge with it), the
    // same query runs again.
    app.clock.advance(chrono::Duration::seconds(
        i64::try_from(retry_after).unwrap() + 120,
    ));
    app.ok(&spender, costly, json!({})).await;
}

#[tokio::test]
async fn aliases_and_directives_are_limited_in_every_position() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Tomas").await;

    let aliases = |n: usize| {
        let fields: Vec<String> = (0..n).map(|i| format!("a{i}: me {{ id }}")).collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let thirty = app.ok(&user, &aliases(30), json!({})).await;
    assert_eq!(thirty["a29"]["id"], user.id.as_str());
    let response = app
        .graphql(Some(&user.token), &aliases(31), json!({}))
        .await;
    assert_eq!(error_code(&response), "TOO_MANY_ALIASES", "{response}");

    let spreads = |n: usize| {
        let spreads = "...F @include(if: true) ".repeat(n);
        format!("query Q {{ me {{ {spreads} }} }} fragment F on User {{ id }}")
    };
    let fifty = app.ok(&user, &spreads(50), json!({})).await;
    assert_eq!(fifty["me"]["id"], user.id.as_str());
    let response = app
        .graphql(Some(&user.token), &spreads(51), json!({}))
        .await;
    assert_eq!(error_code(&response), "TOO_MANY_DIRECTIVES", "{response}");

    // Directives on the operation and the fragment definition count too.
    let on_definitions = format!(
        "query Q {} {{ me {{ ...F }} }} fragment F on User {} {{ id }}",
        "@a ".repeat(30),
        "@b ".repeat(30)
    );
    let response = app
        .graphql(Some(&user.token), &on_definitions, json!({}))
        .await;
    assert_eq!(error_code(&response), "TOO_MANY_DIRECTIVES", "{response}");
}

#[tokio::test]
async fn a_huge_document_is_refused_while_scanned_and_never_echoed() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Ulla").await;

    let huge = format!("{{ {} }}", "me { id } ".repeat(20_000));
    let response = app.graphql(Some(&user.token), &huge, json!({})).await;
    assert_eq!(error_code(&response), "TOO_MANY_TOKENS", "{response}");
    assert!(response.to_string().len() < 500, "{response}");

    let unterminated = format!("{{ user(id: \"{}\") {{ id ", "x".repeat(100_000));
    let response = app
        .graphql(Some(&user.token), &unterminated, json!({}))
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT", "{response}");
    assert!(
        response.to_string().len() < 500,
        "a syntax error does not quote the document: {response}"
    );
    assert!(response["errors"][0]["locations"][0]["line"].is_number());
}

/// Holds the database's write lock from outside the server until dropped: SQLite's
/// through a transaction of its own, PostgreSQL's as a lock on the users and messages tables.
struct WriteLock(DatabaseConnection);

impl WriteLock {
    async fn hold(database_url: &str) -> WriteLock {
        let mut options = ConnectOptions::new(database_url);
        options.max_connections(1).min_connections(1);
        let connection = Database::connect(options).await.expect("second connection");
        let statements: &[&str] = if database_url.starts_with("sqlite:") {
            &["BEGIN IMMEDIATE"]
        } else {
            &[
                "BEGIN",
                "LOCK TABLE users, messages IN ACCESS EXCLUSIVE MODE",
            ]
        };
        for statement in statements {
            connection
                .execute_unprepared(statement)
                .await
                .expect("lock taken");
        }
        WriteLock(connection)
    }

    async fn release(self) {
        self.0
            .execute_unprepared("ROLLBACK")
            .await
            .expect("released");
    }
}

#[tokio::test]
async fn an_operation_past_its_deadline_is_stopped_and_rolled_back() {
    let mut config = test_config().await;
    config.graphql.timeout = Duration::from_millis(300);
    let database_url = config.database_url.expose().to_owned();
    let app = TestApp::spawn_with(config).await;
    let user = app.register("CARE_RECIPIENT", "Vera").await;
    app.ok(&user, "{ me { id } }", json!({})).await;

    let lock = WriteLock::hold(&database_url).await;
    let started = Instant::now();
    let response = app
        .graphql(
            Some(&user.token),
            r#"mutation { updateProfile(input: { displayName: "Changed" }) { displayName } }"#,
            json!({}),
        )
        .await;
    let waited = started.elapsed();
    lock.release().await;
    assert_eq!(error_code(&response), "TIMEOUT", "{response}");
    assert_eq!(response["errors"][0]["extensions"]["retryable"], true);
    assert!(waited < Duration::from_secs(2), "answered after {waited:?}");

    let me = app.ok(&user, "{ me { displayName } }", json!({})).await;
    assert_eq!(me["me"]["displayName"], "Vera", "nothing was kept");
}

#[tokio::test]
async fn a_send_whose_deadline_passed_while_it_waited_for_its_batch_is_not_written() {
    let mut config = test_config().await;
    let database_url = config.database_url.expose().to_owned();
    // Signing up (password hashing) can take longer than the short deadline on a busy
    // machine: the fixture is made through an instance without it.
    let setup = TestApp::spawn_with(config.clone()).await;
    let rita = setup.register("CARE_RECIPIENT", "Rita").await;
    let carol = setup.register("CAREGIVER", "Carol").await;
    let (_, session) = setup.booking_chat(&rita, &carol).await;
    setup.stop().await;
    config.graphql.timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with(config).await;
    let send = |body: &'static str| {
        let variables = json!({ "input": {
            "sessionId": session, "body": body, "clientMessageId": format!("client-{body}") } });
        app.graphql(Some(&rita.token), SEND_MESSAGE, variables)
    };
    app.ok(
        &rita,
        SEND_MESSAGE,
        json!({ "input": {
        "sessionId": session, "body": "first", "clientMessageId": "client-first" } }),
    )
    .await;

    // The writer takes "held" into a batch that waits for the lock; "queued" waits behind
    // that batch until both requests pass their deadline.
    let lock = WriteLock::hold(&database_url).await;
    let (held, queued) = tokio::join!(send("held"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send("queued").await
    });
    assert_eq!(error_code(&held), "TIMEOUT", "{held}");
    assert_eq!(error_code(&queued), "TIMEOUT", "{queued}");
    lock.release().await;

    app.ok(
        &rita,
        SEND_MESSAGE,
        json!({ "input": {
        "sessionId": session, "body": "after", "clientMessageId": "client-after" } }),
    )
    .await;
    let history = app.ok(&rita, HISTORY, json!({ "id": session })).await;
    let bodies: Vec<&str> = nodes(&history["chatSession"]["messages"])
        .iter()
        .filter_map(|message| message["body"].as_str())
        .collect();
    assert!(
        !bodies.contains(&"queued"),
        "told nothing was kept, and nothing was: {bodies:?}"
    );
    assert!(bodies.contains(&"after"), "{bodies:?}");

    // Retrying with the same clientMessageId sends it, once.
    let retried = send("queued").await;
    assert!(retried["errors"].is_null(), "{retried}");
    let again = send("queued").await;
    assert_eq!(
        again["data"]["sendMessage"]["id"],
        retried["data"]["sendMessage"]["id"]
    );
}

#[tokio::test]
async fn a_response_larger_than_the_cap_is_replaced_by_an_error() {
    let mut config = test_config().await;
    config.graphql.max_response_bytes = 2_000;
    let app = TestApp::spawn_with(config).await;
    let recipient = with_series(&app, 104).await;

    let small = app.ok(&recipient, "{ me { id } }", json!({})).await;
    assert_eq!(small["me"]["id"], recipient.id.as_str());
    let response = app
        .graphql(
            Some(&recipient.token),
            "{ bookings(first: 1) { nodes { series { occurrences { id startsAt } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&response), "RESPONSE_TOO_LARGE", "{response}");
    assert_eq!(response["data"], Value::Null);
}

#[tokio::test]
async fn http_refusals_are_graphql_shaped_json() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let url = graphql_url(&app);

    let huge_body =
        json!({ "query": "{ me { id } }", "variables": { "pad": "x".repeat(300_000) } });
    let (status, body) = send(client.post(&url).json(&huge_body)).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (413, "PAYLOAD_TOO_LARGE")
    );

    // Without a Content-Length, the limit still holds while the body streams in.
    let mut chunked = raw_connection(&app).await;
    let head = "POST /graphql HTTP/1.1\r\nHost: caregraph\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    chunked.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("2710\r\n{}\r\n", " ".repeat(10_000));
    for _ in 0..40 {
        if chunked.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), chunked.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"PAYLOAD_TOO_LARGE\""), "{answer}");

    let (status, body) = send(
        client
            .post(&url)
            .header("content-type", "multipart/form-data; boundary=x")
            .body("--x\r\n\r\n--x--"),
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (415, "UNSUPPORTED_MEDIA_TYPE")
    );

    let (status, body) = send(
        client
            .post(&url)
            .header("content-type", "application/json")
            .body("{\"query\": "),
    )
    .await;
    assert_eq!((status, error_code(&body).as_str()), (400, "BAD_REQUEST"));
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the body is not a GraphQL request in JSON: EOF"),
        "{message}"
    );

    let batch = json!([{ "query": "{ me { id } }" }, { "query": "{ me { id } }" }]);
    let (status, body) = send(client.post(&url).json(&batch)).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "BAD_REQUEST"));

    let (status, body) = send(client.get(format!("http://{}/nowhere", app.addr))).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "NOT_FOUND"));
    let (status, body) = send(client.put(&url).body("{}")).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (405, "METHOD_NOT_ALLOWED")
    );

    // The well-behaved request beside them is answered as ever.
    let user = app.register("CARE_RECIPIENT", "Wanda").await;
    app.ok(&user, "{ me { id } }", json!({})).await;
}

#[tokio::test]
async fn refused_requests_cost_their_sender_too() {
    let app = spawn_with_cost_allowance().await;
    let sender = app.register("CARE_RECIPIENT", "Zeca").await;
    let client = reqwest::Client::new();
    let malformed = || {
        client
            .post(graphql_url(&app))
            .bearer_auth(&sender.token)
            .header("content-type", "application/json")
            .body("{")
    };
    let mut refused = 0;
    let body = loop {
        let (status, body) = send(malformed()).await;
        if status != 400 {
            assert_eq!((status, error_code(&body).as_str()), (429, "RATE_LIMITED"));
            break body;
        }
        refused += 1;
        assert!(
            refused <= 5_000,
            "malformed bodies never used up the allowance"
        );
    };
    // Each costs something, so a 5,000 allowance goes in far fewer than 5,000.
    assert!(refused < 1_000, "{refused}");
    assert!(body["errors"][0]["extensions"]["retryAfterSeconds"].is_u64());
    assert_eq!(
        app.code(&sender, "{ me { id } }", json!({})).await,
        "RATE_LIMITED"
    );
}

async fn raw_connection(app: &TestApp) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connects")
}

#[tokio::test]
async fn half_sent_requests_are_not_held_open() {
    let mut config = test_config().await;
    config.http.header_timeout = Duration::from_millis(500);
    config.http.body_timeout = Duration::from_millis(500);
    let app = TestApp::spawn_with(config).await;

    let mut trickle = raw_connection(&app).await;
    trickle
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: caregraph\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), trickle.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "headers never finished, and the server still held the connection"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));

    let mut slow_body = raw_connection(&app).await;
    slow_body
        .write_all(
            b"POST /graphql HTTP/1.1\r\nHost: caregraph\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"query\":",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), slow_body.read_to_end(&mut answer))
        .await
        .expect("answered within the body timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"REQUEST_TIMEOUT\""), "{answer}");
}

fn production(mut config: Config) -> Config {
    config.environment = Environment::Production;
    config.graphql.introspection = false;
    config.graphql.graphiql = false;
    config.http.cors_allowed_origins = Some(vec!["https://app.example.com".to_owned()]);
    config
}

#[tokio::test]
async fn production_hides_the_schema_and_answers_only_its_origins() {
    let app = TestApp::spawn_with(production(test_config().await)).await;
    let user = app.register("CARE_RECIPIENT", "Xavi").await;

    for token in [None, Some(user.token.as_str())] {
        let response = app
            .graphql(token, "{ __schema { types { name } } }", json!({}))
            .await;
        assert!(response["data"].is_null(), "{response}");
        assert_eq!(
            error_code(&response),
            "INTROSPECTION_DISABLED",
            "{response}"
        );
    }
    let typo = app
        .graphql(Some(&user.token), "{ mee { id } }", json!({}))
        .await;
    let message = typo["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");

    let client = reqwest::Client::new();
    let (status, body) = send(client.get(graphql_url(&app)).header("accept", "text/html")).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "BAD_REQUEST"));

    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, graphql_url(&app))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://app.example.com"
    );
    let refused = preflight("https://evil.example.net").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn production_refuses_to_start_without_an_origin_list() {
    let mut config = production(test_config().await);
    config.http.cors_allowed_origins = None;
    let refused = caregraph::startup::Application::build(config).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn development_keeps_the_explorer_and_introspection() {
    let app = TestApp::spawn().await;
    let response = app
        .graphql(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(response["data"]["__schema"]["queryType"]["name"], "Query");
    let page = reqwest::get(graphql_url(&app)).await.unwrap();
    assert!(page.text().await.unwrap().contains("graphiql"));
}
