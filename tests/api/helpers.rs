//! Spawning the app and speaking GraphQL to it over HTTP and graphql-ws; the steps many
//! tests take on their way (booking, enabling a chat, reading the inbox); reading a
//! response's error code and a connection's nodes.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use caregraph::{
    clock::ManualClock,
    config::{Config, DEV_JWT_SECRET, GraphqlConfig, RateConfig},
    services::Services,
    startup::Application,
    viewer::Credentials,
};
use chrono::{SubsecRound, Utc};
use futures_util::{FutureExt, SinkExt, StreamExt, stream::BoxStream};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        Message, client::IntoClientRequest, http::HeaderValue, protocol::frame::coding::CloseCode,
    },
};
use uuid::Uuid;

/// The secret test servers sign with, so tests can forge tokens of every kind.
pub const TEST_JWT_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
/// The Supabase project secret test servers accept.
pub const TEST_SUPABASE_SECRET: &str = "supabase-test-secret-at-least-32-bytes";

/// A running server and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub clock: ManualClock,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Asks the server to stop as SIGTERM would; taken by [`TestApp::begin_shutdown`].
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The server's shared services, for subscribers run beside it (see [`Subscriber`]).
    services: Services,
    graphql: GraphqlConfig,
}

/// A registered user and their token.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub token: String,
}

/// The configuration every test starts from: loopback port 0, a fresh database, short timeouts.
pub async fn test_config() -> Config {
    let mut config = Config::from_lookup(|_| None).expect("default config");
    config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.database_url = fresh_database().await.into();
    config.auth.jwt_secret = TEST_JWT_SECRET.into();
    config.auth.supabase_jwt_secret = Some(TEST_SUPABASE_SECRET.into());
    config.websocket.init_timeout = Duration::from_millis(500);
    // Tests move the clock by days; their tokens must outlive that.
    config.auth.token_ttl = Duration::from_secs(365 * 86_400);
    // Every test signs its users up and in from 127.0.0.1; the abuse tests set their own limits.
    let generous = RateConfig {
        burst: 100_000,
        period: Duration::from_millis(1),
    };
    config.sign_in.per_account = generous;
    config.sign_in.per_address = generous;
    config.sign_in.registrations_per_address = generous;
    // The manual clock stands still, so no allowance refills: the usage tests set their own.
    let unbounded = RateConfig {
        burst: u32::MAX,
        period: Duration::from_millis(1),
    };
    config.usage.cost = unbounded;
    config.usage.socket_opens = unbounded;
    config.usage.socket_operations = unbounded;
    assert_ne!(config.auth.jwt_secret.expose(), DEV_JWT_SECRET);
    config
}

/// A database nobody else uses: a new SQLite file, or a new PostgreSQL database.
/// Test databases older than this are left over from runs that ended: each run of the test
/// binary removes them once, so repeated runs do not fill the disk. Younger ones may belong
/// to a run still going.
const LEFTOVER_AFTER: Duration = Duration::from_secs(3600);

/// Set once this process swept the leftovers of earlier runs.
static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Drops the `caregraph_test_*` databases whose name (a UUIDv7, so their creation time) is
/// older than [`LEFTOVER_AFTER`].
async fn sweep_old_databases(admin: &DatabaseConnection) {
    let Ok(rows) = admin
        .query_all_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            "SELECT datname FROM pg_database WHERE datname LIKE 'caregraph_test_%'",
        ))
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else {
            continue;
        };
        let created = name
            .strip_prefix("caregraph_test_")
            .and_then(|id| Uuid::parse_str(id).ok())
            .and_then(|id| id.get_timestamp())
            .map(|at| {
                let (seconds, _) = at.to_unix();
                std::time::UNIX_EPOCH + Duration::from_secs(seconds)
            });
        let old = created.is_some_and(|at| {
            std::time::SystemTime::now()
                .duration_since(at)
                .is_ok_and(|age| age > LEFTOVER_AFTER)
        });
        if old {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// Removes the `caregraph-test-*.sqlite` files (and their WAL and shared-memory files) last
/// changed longer ago than [`LEFTOVER_AFTER`].
async fn sweep_old_files() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .file_name()
            .to_string_lossy()
            .starts_with("caregraph-test-")
            && entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age > LEFTOVER_AFTER);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

async fn fresh_database() -> String {
    let suffix = Uuid::now_v7().simple().to_string();
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if base.starts_with("postgres") => {
            let admin = sea_orm::Database::connect(&base)
                .await
                .expect("connect to TEST_DATABASE_URL");
            SWEPT.get_or_init(|| sweep_old_databases(&admin)).await;
            let name = format!("caregraph_test_{suffix}");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            let (without_query, query) = match base.split_once('?') {
                Some((url, query)) => (url, format!("?{query}")),
                None => (base.as_str(), String::new()),
            };
            let server = without_query
                .rsplit_once('/')
                .map(|(server, _)| server)
                .expect("TEST_DATABASE_URL names a database");
            format!("{server}/{name}{query}")
        }
        _ => {
            SWEPT.get_or_init(sweep_old_files).await;
            let path = std::env::temp_dir().join(format!("caregraph-test-{suffix}.sqlite"));
            format!("sqlite://{}?mode=rwc", path.display())
        }
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(test_config().await).await
    }

    pub async fn spawn_with(config: Config) -> TestApp {
        Self::spawn_with_clock(config, ManualClock::new(Utc::now().trunc_subsecs(0))).await
    }

    /// A server on `config` reading time from `clock`, which other servers may share.
    pub async fn spawn_with_clock(config: Config, clock: ManualClock) -> TestApp {
        Self::spawn_on(config, clock.clone(), Arc::new(clock)).await
    }

    /// A server on the wall clock, for measurements; its `clock` field moves nothing.
    pub async fn spawn_in_real_time(config: Config) -> TestApp {
        let unused = ManualClock::new(Utc::now().trunc_subsecs(0));
        Self::spawn_on(config, unused, Arc::new(caregraph::clock::SystemClock)).await
    }

    async fn spawn_on(
        config: Config,
        clock: ManualClock,
        server_clock: Arc<dyn caregraph::clock::Clock>,
    ) -> TestApp {
        let graphql = config.graphql.clone();
        let app = Application::build_with_clock(config, server_clock)
            .await
            .expect("application builds");
        let addr = app.local_addr().expect("bound address");
        let services = app.services().clone();
        let (stop, stop_requested) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(app.run_until(async move {
            // A test that never asks for a stop keeps its server until the test ends.
            if stop_requested.await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        TestApp {
            addr,
            clock,
            http: reqwest::Client::new(),
            server,
            stop: Some(stop),
            services,
            graphql,
        }
    }

    /// Ends the server at once, as a crash would: whatever it was doing is dropped mid-way.
    pub fn kill(&self) {
        self.server.abort();
    }

    /// The server's shared services, for a test that builds its own router on them.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The server's database, for a test that breaks it on purpose.
    pub fn db(&self) -> &DatabaseConnection {
        &self.services.state.db
    }

    /// Starts subscription `query` as `user` on the server's schema, database and bus, in the
    /// test's own task (see [`Subscriber`]). When this returns, the subscription listens to
    /// the bus.
    pub async fn subscriber(&self, user: &TestUser, query: &str, variables: Value) -> Subscriber {
        let viewer = self
            .services
            .auth
            .authenticator
            .authenticate(&user.token)
            .await
            .expect("a valid token");
        let schema = caregraph::graphql::build(&self.services, &self.graphql);
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables))
            .data(Credentials::Authenticated(viewer));
        let mut responses = schema.execute_stream(request);
        // One poll runs the resolver, which subscribes to the bus before its first await; a
        // stream that starts with the current state may answer at once.
        let early = match responses.next().now_or_never() {
            None => None,
            Some(Some(response)) => Some(response),
            Some(None) => panic!("the subscription ended before it started"),
        };
        Subscriber { responses, early }
    }

    /// Stops the server and its scheduler, as a crash or a restart would.
    pub async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
    }

    /// Asks the server to stop gracefully, as SIGTERM would, and returns at once.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Whether the server task finished (after [`TestApp::begin_shutdown`]) within `wait`.
    pub async fn finished_within(self, wait: Duration) -> bool {
        matches!(
            tokio::time::timeout(wait, self.server).await,
            Ok(Ok(Ok(())))
        )
    }

    /// POSTs one GraphQL operation; returns the whole response body.
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.post(token, json!({ "query": query, "variables": variables }))
            .await
    }

    /// POSTs a GraphQL request body as given (to name an operation, say).
    pub async fn post(&self, token: Option<&str>, body: Value) -> Value {
        let mut request = self
            .http
            .post(format!("http://{}/graphql", self.addr))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        assert!(response.status().is_success(), "HTTP {}", response.status());
        response.json().await.expect("JSON response")
    }

    /// Runs an operation as `user` and returns its `data`, failing on any error.
    pub async fn ok(&self, user: &TestUser, query: &str, variables: Value) -> Value {
        data(self.graphql(Some(&user.token), query, variables).await)
    }

    /// Runs an operation as `user` and returns the code of its first error.
    pub async fn code(&self, user: &TestUser, query: &str, variables: Value) -> String {
        error_code(&self.graphql(Some(&user.token), query, variables).await)
    }

    /// Registers a user with a unique email; `role` is CAREGIVER or CARE_RECIPIENT.
    pub async fn register(&self, role: &str, name: &str) -> TestUser {
        self.register_in(role, name, "UTC").await
    }

    pub async fn register_in(&self, role: &str, name: &str, timezone: &str) -> TestUser {
        let email = format!(
            "{}-{}@example.com",
            name.to_lowercase().replace(' ', "."),
            Uuid::now_v7().simple()
        );
        let response = self
            .graphql(
                None,
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
                json!({ "input": {
                    "email": email, "password": "correct horse", "displayName": name,
                    "role": role, "timezone": timezone
                }}),
            )
            .await;
        let payload = &data(response)["register"];
        TestUser {
            id: payload["user"]["id"].as_str().expect("user id").to_owned(),
            token: payload["token"].as_str().expect("token").to_owned(),
        }
    }

    /// Opens a websocket offering one graphql-ws subprotocol.
    pub async fn ws(&self, protocol: Protocol) -> WsClient {
        let mut request = format!("ws://{}/graphql", self.addr)
            .into_client_request()
            .expect("ws request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(protocol.name()),
        );
        let (stream, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connects");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol.name())
        );
        WsClient { stream, protocol }
    }

    /// A socket that completed `connection_init` as `user`.
    pub async fn ws_as(&self, protocol: Protocol, user: &TestUser) -> WsClient {
        let mut ws = self.ws(protocol).await;
        ws.init(json!({ "Authorization": format!("Bearer {}", user.token) }))
            .await;
        ws
    }
}

/// Polls `check` every 25 ms until it gives a value; fails after ten seconds, naming `what`
/// it waited for.
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 10 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every notification's fields, as the inbox tests read them.
pub const INBOX: &str =
    "query($types: [NotificationType!], $unreadOnly: Boolean, $first: Int, $after: String) {
    notifications(types: $types, unreadOnly: $unreadOnly, first: $first, after: $after) {
        edges { cursor node { id type title body data isRead readAt cursor } }
        pageInfo { hasNextPage endCursor } } }";
/// Enables a booking's chat.
pub const ENABLE_CHAT: &str =
    "mutation($id: UUID!) { enableChat(bookingId: $id) { id readOnly lastSeq } }";
/// Creates a booking, or a series with its occurrences.
const CREATE_BOOKING: &str = "mutation($input: CreateBookingInput!) {
    createBooking(input: $input) { id series { occurrences { id } } } }";
/// Asks a caregiver for a video call.
pub const REQUEST_CALL: &str =
    "mutation($c: UUID!) { requestVideoCall(input: {caregiverId: $c}) { id } }";

/// What many tests do on their way to what they test; each step must succeed.
impl TestApp {
    /// The server clock as a Unix timestamp, for forging tokens.
    pub fn clock_now(&self) -> i64 {
        use caregraph::clock::Clock;
        self.clock.now().timestamp()
    }

    /// An RFC 3339 time range starting `hours` from the server's now and lasting two hours.
    pub fn clock_after_hours(&self, hours: i64) -> (String, String) {
        use caregraph::clock::Clock;
        let start = self.clock.now() + chrono::Duration::hours(hours);
        let end = start + chrono::Duration::hours(2);
        (start.to_rfc3339(), end.to_rfc3339())
    }

    /// `recipient` books `caregiver` from `starts` to `ends`; returns the pending booking's id.
    pub async fn book_at(
        &self,
        recipient: &TestUser,
        caregiver: &TestUser,
        starts: &str,
        ends: &str,
    ) -> String {
        let created = self
            .ok(
                recipient,
                CREATE_BOOKING,
                json!({ "input": { "caregiverId": caregiver.id, "startsAt": starts, "endsAt": ends } }),
            )
            .await;
        created["createBooking"]["id"].as_str().unwrap().to_owned()
    }

    /// `recipient` books `caregiver` `hours` ahead, for two hours; returns the pending
    /// booking's id.
    pub async fn book(&self, recipient: &TestUser, caregiver: &TestUser, hours: i64) -> String {
        let (starts, ends) = self.clock_after_hours(hours);
        self.book_at(recipient, caregiver, &starts, &ends).await
    }

    /// `recipient` books `caregiver` `hours` ahead, for two hours, repeating as `recurrence`
    /// says; returns the created booking with its series' occurrences.
    pub async fn book_series(
        &self,
        recipient: &TestUser,
        caregiver: &TestUser,
        hours: i64,
        recurrence: Value,
    ) -> Value {
        let (starts, ends) = self.clock_after_hours(hours);
        let created = self
            .ok(
                recipient,
                CREATE_BOOKING,
                json!({ "input": { "caregiverId": caregiver.id, "startsAt": starts, "endsAt": ends,
                    "recurrence": recurrence } }),
            )
            .await;
        created["createBooking"].clone()
    }

    /// `recipient` books `caregiver` two days ahead and enables the booking's chat; returns
    /// the booking's id and the chat session's.
    pub async fn booking_chat(
        &self,
        recipient: &TestUser,
        caregiver: &TestUser,
    ) -> (String, String) {
        let booking = self.book(recipient, caregiver, 48).await;
        let session = self.enable_chat(recipient, &booking).await;
        (booking, session)
    }

    /// Runs `mutation(id: $id)` (`acceptBooking`, `cancelVideoCall`, …) as `who`.
    pub async fn act(&self, who: &TestUser, mutation: &str, id: &str) {
        self.ok(
            who,
            &format!("mutation($id: UUID!) {{ {mutation}(id: $id) {{ id }} }}"),
            json!({ "id": id }),
        )
        .await;
    }

    /// `recipient` asks `caregiver` for a video call; returns its id.
    pub async fn request_call(&self, recipient: &TestUser, caregiver: &TestUser) -> String {
        let requested = self
            .ok(recipient, REQUEST_CALL, json!({ "c": caregiver.id }))
            .await;
        requested["requestVideoCall"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `who` enables the chat of `booking`; returns the chat session's id.
    pub async fn enable_chat(&self, who: &TestUser, booking: &str) -> String {
        let enabled = self.ok(who, ENABLE_CHAT, json!({ "id": booking })).await;
        enabled["enableChat"]["id"].as_str().unwrap().to_owned()
    }

    /// Pages through connection `field` of `query` as `user`, `first` nodes at a time, from
    /// the start until a page says no other follows; returns each page's nodes.
    pub async fn pages(
        &self,
        user: &TestUser,
        query: &str,
        field: &str,
        first: i64,
    ) -> Vec<Vec<Value>> {
        let mut pages = Vec::new();
        let mut after = json!(null);
        loop {
            let page = self
                .ok(user, query, json!({ "first": first, "after": after }))
                .await;
            let connection = &page[field];
            pages.push(nodes(connection).into_iter().cloned().collect());
            if connection["pageInfo"]["hasNextPage"] == json!(false) {
                return pages;
            }
            after = connection["pageInfo"]["endCursor"].clone();
        }
    }

    /// Every notification of `user`, newest first (at most 100).
    pub async fn inbox(&self, user: &TestUser) -> Vec<Value> {
        let page = self.ok(user, INBOX, json!({ "first": 100 })).await;
        nodes(&page["notifications"]).into_iter().cloned().collect()
    }

    /// The types of `user`'s notifications, oldest first.
    pub async fn inbox_types(&self, user: &TestUser) -> Vec<String> {
        let mut types: Vec<String> = self
            .inbox(user)
            .await
            .iter()
            .map(|node| node["type"].as_str().unwrap().to_owned())
            .collect();
        types.reverse();
        types
    }
}

/// The `data` of a response that must have no errors.
pub fn data(response: Value) -> Value {
    assert!(
        response.get("errors").is_none(),
        "unexpected errors: {response}"
    );
    response["data"].clone()
}

/// A connection's nodes, in the order of its edges: what a list shows.
pub fn nodes(connection: &Value) -> Vec<&Value> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("expected a connection with edges: {connection}"))
        .iter()
        .map(|edge| &edge["node"])
        .collect()
}

/// Each node's `field`, in the order of a connection's edges.
pub fn node_fields<'a>(connection: &'a Value, field: &str) -> Vec<&'a Value> {
    nodes(connection)
        .into_iter()
        .map(|node| &node[field])
        .collect()
}

/// The `extensions.code` of a failure: of the first error when given a response or a
/// subscription's payload (`{ "errors": [...] }`), or of the error itself when given one
/// error (what a socket's `error` message carries).
pub fn error_code(failure: &Value) -> String {
    let error = failure.get("errors").map_or(failure, |errors| &errors[0]);
    error["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code: {failure}"))
        .to_owned()
}

/// The two graphql-ws subprotocols.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    /// `graphql-transport-ws`, the current protocol (graphql-ws library, Apollo, urql).
    TransportWs,
    /// `graphql-ws`, the legacy subscriptions-transport-ws protocol.
    LegacyWs,
}

impl Protocol {
    pub const BOTH: [Protocol; 2] = [Protocol::TransportWs, Protocol::LegacyWs];

    fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::LegacyWs => "graphql-ws",
        }
    }
}

/// A graphql-ws client speaking either subprotocol.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    protocol: Protocol,
}

/// What the server did next.
#[derive(Debug)]
pub enum WsEvent {
    Message(Value),
    Closed(u16, String),
}

impl WsClient {
    pub async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("websocket send");
    }

    /// The next message or close, failing after five seconds.
    pub async fn next_event(&mut self) -> WsEvent {
        self.next_event_within(Duration::from_secs(5))
            .await
            .expect("the server said nothing for five seconds")
    }

    /// The next message or close, or None if nothing came within `wait`. Keep-alives are
    /// passed over and pings answered, as graphql-ws clients do.
    pub async fn next_event_within(&mut self, wait: Duration) -> Option<WsEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let event = self
                .next_raw_event_within(deadline - tokio::time::Instant::now())
                .await?;
            match &event {
                WsEvent::Message(message) if message["type"] == "ka" => continue,
                WsEvent::Message(message) if message["type"] == "ping" => {
                    // The server may close meanwhile; the close is read next.
                    let pong = json!({ "type": "pong" }).to_string();
                    let _ = self.stream.send(Message::Text(pong.into())).await;
                }
                _ => return Some(event),
            }
        }
    }

    /// The next message or close as it came, keep-alives included, answering nothing.
    pub async fn next_raw_event_within(&mut self, wait: Duration) -> Option<WsEvent> {
        loop {
            let frame = match tokio::time::timeout(wait, self.stream.next()).await {
                Err(_) => return None,
                Ok(frame) => frame,
            };
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).expect("JSON message");
                    return Some(WsEvent::Message(message));
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                        .unwrap_or((u16::from(CloseCode::Status), String::new()));
                    return Some(WsEvent::Closed(code, reason));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(WsEvent::Closed(1006, "dropped".to_owned())),
            }
        }
    }

    /// Sends a text frame as given, even one the server refuses to read to its end.
    pub async fn send_text(&mut self, text: String) {
        // The server may close before the whole frame is written; the close is read next.
        let _ = self.stream.send(Message::Text(text.into())).await;
    }

    /// Sends `connection_init` with `payload`, expecting nothing in particular back.
    pub async fn send_init(&mut self, payload: Value) {
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
    }

    /// Sends `connection_init` and expects the acknowledgement.
    pub async fn init(&mut self, payload: Value) {
        self.send_init(payload).await;
        match self.next_event().await {
            WsEvent::Message(message) if message["type"] == "connection_ack" => {}
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    /// Expects the server to close the socket, and returns the code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        match self.next_event().await {
            WsEvent::Closed(code, reason) => (code, reason),
            other => panic!("expected the socket to close, got {other:?}"),
        }
    }

    /// Ends subscription `id` from the client's side.
    pub async fn complete(&mut self, id: &str) {
        let kind = match self.protocol {
            Protocol::TransportWs => "complete",
            Protocol::LegacyWs => "stop",
        };
        self.send(json!({ "id": id, "type": kind })).await;
    }

    /// Starts a subscription under `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = match self.protocol {
            Protocol::TransportWs => "subscribe",
            Protocol::LegacyWs => "start",
        };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The `data` of the next result of subscription `id`; fails on errors or anything else.
    pub async fn next_data(&mut self, id: &str) -> Value {
        let payload = self.next_payload(id).await;
        assert!(
            payload.get("errors").is_none(),
            "subscription error: {payload}"
        );
        payload["data"].clone()
    }

    /// The payload of the next result of subscription `id`, errors included.
    pub async fn next_payload(&mut self, id: &str) -> Value {
        let kind = match self.protocol {
            Protocol::TransportWs => "next",
            Protocol::LegacyWs => "data",
        };
        match self.next_event().await {
            WsEvent::Message(message) if message["type"] == kind && message["id"] == id => {
                message["payload"].clone()
            }
            other => panic!("expected a {kind} for {id}, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives for a while: what an outsider must see.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(event) = self.next_event_within(wait).await {
            panic!("expected silence, got {event:?}");
        }
    }
}

/// A subscription that takes events from the server's bus only while the test reads it.
///
/// A socket cannot make a subscriber fall behind on cue: the server keeps moving events into
/// the socket's buffers while the client does not read. This subscriber runs the server's own
/// schema in the test's task, so nothing is taken from the bus between two reads, and events
/// published meanwhile beyond the bus's capacity are missed, every time.
pub struct Subscriber {
    responses: BoxStream<'static, async_graphql::Response>,
    /// A result that came with the poll that started the subscription.
    early: Option<async_graphql::Response>,
}

impl Subscriber {
    /// The next result as a client receives it (`data`, `errors`), or None once the
    /// subscription ended; fails after five seconds of silence.
    pub async fn next_response(&mut self) -> Option<Value> {
        let response = match self.early.take() {
            Some(early) => early,
            None => tokio::time::timeout(Duration::from_secs(5), self.responses.next())
                .await
                .expect("the subscription said nothing for five seconds")?,
        };
        Some(serde_json::to_value(response).expect("a response is JSON"))
    }

    /// Reads results until one's `data` satisfies `reached`, failing on an error, on the
    /// end of the subscription, or after five seconds of silence; returns each `data` read.
    pub async fn read_until(&mut self, mut reached: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut read = Vec::new();
        loop {
            let response = self
                .next_response()
                .await
                .unwrap_or_else(|| panic!("the subscription ended after {read:?}"));
            let data = data(response);
            let done = reached(&data);
            read.push(data);
            if done {
                return read;
            }
        }
    }
}

/// A file holding `contents`, removed when dropped.
pub struct TempFile(std::path::PathBuf);

impl TempFile {
    pub fn new(name: &str, contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!("caregraph-{}-{name}", Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    pub fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
