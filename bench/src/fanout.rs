//! The scenarios: idle capacity, chat fan-out latency (optionally with slow readers), and
//! the write path at saturation.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    api::{self, Error, Socket},
    cluster::{Cluster, socket_index},
    report::{CpuMeter, mib, percentiles},
    setup::{self, Pair},
};

const MESSAGE_ADDED: &str = "subscription($id: UUID!, $after: String) {
    messageAdded(sessionId: $id, after: $after) { seq body } }";
const TYPING: &str = "subscription($id: UUID!) { typing(sessionId: $id) { typing } }";
const UNREAD: &str = "subscription { unreadNotificationCount }";
const SEND: &str = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { seq } }";

/// How long a phase waits after its last send for the deliveries still on their way.
pub const DRAIN: Duration = Duration::from_secs(3);

/// A fan-out run.
pub struct Plan {
    pub connections: usize,
    /// Where the pairs are kept between runs ([`setup::pairs_in`]).
    pub fixture: Option<PathBuf>,
    pub rate: u32,
    pub duration: Duration,
    pub slow_percent: f64,
    pub stall: Duration,
}

/// What every listening socket adds to.
#[derive(Default)]
struct Tally {
    latencies: Mutex<Vec<Duration>>,
    received: AtomicU64,
    duplicates: AtomicU64,
    reordered: AtomicU64,
    errors: AtomicU64,
}

/// One connected user: which pair, which side.
struct Listener {
    socket: Socket,
    pair: usize,
    is_recipient: bool,
}

/// Connects `count` users (both members of `count / 2` pairs), each with its three
/// subscriptions live and its socket on the instance [`socket_index`] gives it, and returns
/// them with how long that took.
async fn connect(
    cluster: &Cluster,
    pairs: &[Pair],
    count: usize,
) -> Result<(Vec<Listener>, Duration), Error> {
    let started = Instant::now();
    let users: Vec<(usize, bool)> = (0..count)
        .map(|index| (index / 2, index.is_multiple_of(2)))
        .collect();
    let connected: Vec<Result<Listener, Error>> = stream::iter(users)
        .map(|(pair, is_recipient)| async move {
            let token = if is_recipient {
                &pairs[pair].recipient_token
            } else {
                &pairs[pair].caregiver_token
            };
            let index = socket_index(pair, is_recipient);
            let server = cluster.round_robin(index);
            let source = cluster.source_address(index, count);
            let mut socket = server.socket(token, source).await?;
            let session = json!({ "id": pairs[pair].session_id });
            let resume =
                json!({ "id": pairs[pair].session_id, "after": pairs[pair].opening_cursor });
            api::subscribe(&mut socket, "m", MESSAGE_ADDED, resume).await?;
            api::subscribe(&mut socket, "t", TYPING, session).await?;
            api::subscribe(&mut socket, "u", UNREAD, json!({})).await?;
            // The count's first value proves the socket is subscribed. `messageAdded` may read
            // its starting point later than that, which is why it resumes after a cursor.
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) if text.contains("\"id\":\"u\"") => break,
                    Some(Ok(_)) => continue,
                    other => return Err(format!("subscription did not start: {other:?}").into()),
                }
            }
            Ok(Listener {
                socket,
                pair,
                is_recipient,
            })
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let listeners = connected.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok((listeners, started.elapsed()))
}

fn pairs_for(connections: usize) -> usize {
    connections.div_ceil(2)
}

/// The pairs of `connections` users, once this tool and the servers are known to be allowed
/// that many sockets: a limit found after making the fixture would waste it.
async fn audience_pairs(
    cluster: &Cluster,
    connections: usize,
    fixture: Option<&Path>,
) -> Result<Vec<Pair>, Error> {
    cluster.check_descriptors(connections)?;
    setup::pairs_in(cluster.setup(), pairs_for(connections), fixture).await
}

pub async fn idle(
    cluster: &Cluster,
    connections: usize,
    fixture: Option<&Path>,
    settle: Duration,
) -> Result<bool, Error> {
    let pairs = audience_pairs(cluster, connections, fixture).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = cluster.resident_bytes();
    let cpu = CpuMeter::start(cluster);
    let (listeners, took) = connect(cluster, &pairs, connections).await?;
    let cpu_per_connection = cpu.per(cluster, connections, "connection");
    tokio::time::sleep(settle).await;
    let after = cluster.resident_bytes();
    println!(
        "idle: {} connections, 3 subscriptions each",
        listeners.len()
    );
    if let Some(spread) = cluster.sockets_spread(listeners.len()) {
        println!("  {spread}");
    }
    println!(
        "  connections initialised and subscribed: {:.0}/s ({:.2} s)",
        listeners.len() as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
    if let Some(cpu_per_connection) = cpu_per_connection {
        println!("  {cpu_per_connection}");
    }
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "  server resident memory: {:.1} MiB before, {:.1} MiB after: {:.1} KB per connection",
            mib(before),
            mib(after),
            after.saturating_sub(before) as f64 / 1024.0 / listeners.len() as f64
        );
    }
    if let Some(by_process) = cluster.resident_by_process() {
        println!("  {by_process}");
    }
    Ok(true)
}

/// The fan-out fixture while it runs: every user connected, a reader per socket, and where
/// sends and deliveries are recorded. Phases run one after another on the same sockets, so
/// that they differ only in what else happens meanwhile.
pub struct Audience {
    pairs: Vec<Pair>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    base: Instant,
    sent_at: Arc<Vec<AtomicU64>>,
    tally: Arc<Tally>,
    /// Every how many pairs one stalls (0: none do).
    slow_every: usize,
    slow_sockets: usize,
    stall: Duration,
    /// The index of the next message sent: unique over the whole run.
    next_message: usize,
}

/// What one phase of sends measured: its deliveries to readers that keep up, and its cost.
pub struct Phase {
    pub offered: usize,
    pub expected: u64,
    /// Deliveries to every socket, the senders' own echoes included.
    pub received: u64,
    pub latencies: Vec<Duration>,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub errors: u64,
    pub memory_at_end_of_sending: Option<u64>,
    pub server_cpu: Option<Duration>,
    pub cpu_per_message: Option<String>,
}

impl Phase {
    /// Nothing lost, duplicated, reordered or refused.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.reordered == 0 && self.errors == 0
    }
}

impl Audience {
    /// Makes the pairs, connects `plan.connections` users and starts reading, with room for
    /// `phases` phases of `plan`'s sends.
    pub async fn connect(cluster: &Cluster, plan: &Plan, phases: usize) -> Result<Self, Error> {
        let pairs = audience_pairs(cluster, plan.connections, plan.fixture.as_deref()).await?;
        let (listeners, took) = connect(cluster, &pairs, plan.connections).await?;
        println!(
            "connected {} sockets in {:.2} s",
            listeners.len(),
            took.as_secs_f64()
        );
        if let Some(spread) = cluster.sockets_spread(listeners.len()) {
            println!(
                "  {spread}; each message is sent through another server than its recipient's socket"
            );
        }
        let per_phase =
            plan.rate as usize * plan.duration.as_secs() as usize + plan.rate as usize + 16;
        let sent_at: Arc<Vec<AtomicU64>> =
            Arc::new((0..per_phase * phases).map(|_| AtomicU64::new(0)).collect());
        // Slow readers are whole pairs, so every message either goes to a reader that keeps up
        // (and is measured) or to one that stalls (and is not).
        let slow_every = if plan.slow_percent > 0.0 {
            (100.0 / plan.slow_percent).round().max(1.0) as usize
        } else {
            0
        };
        let mut audience = Audience {
            pairs,
            readers: Vec::new(),
            base: Instant::now(),
            sent_at,
            tally: Arc::new(Tally::default()),
            slow_every,
            slow_sockets: 0,
            stall: plan.stall,
            next_message: 0,
        };
        for listener in listeners {
            let stall = if audience.is_slow(listener.pair) {
                plan.stall
            } else {
                Duration::ZERO
            };
            audience.slow_sockets += usize::from(!stall.is_zero());
            let reader = read(
                listener,
                audience.base,
                audience.sent_at.clone(),
                audience.tally.clone(),
                stall,
            );
            audience.readers.push(tokio::spawn(reader));
        }
        Ok(audience)
    }

    fn is_slow(&self, pair: usize) -> bool {
        self.slow_every > 0 && pair.is_multiple_of(self.slow_every)
    }

    /// Sends at `plan.rate` for `plan.duration` (open loop), each message through an instance
    /// other than its recipient's socket's, waits for the deliveries (and for stalled readers
    /// to resume), and returns what this phase measured.
    pub async fn run_phase(&mut self, cluster: &Cluster, plan: &Plan) -> Phase {
        let live_pairs = pairs_for(self.readers.len());
        let cpu = CpuMeter::start(cluster);
        let expected = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(plan.rate)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut senders = Vec::new();
        let first = self.next_message;
        let deadline = Instant::now() + plan.duration;
        while Instant::now() < deadline && self.next_message < self.sent_at.len() {
            ticker.tick().await;
            let index = self.next_message - first;
            let pair_index = index % live_pairs;
            let pair = &self.pairs[pair_index];
            let from_recipient = (index / live_pairs).is_multiple_of(2);
            let token = if from_recipient {
                pair.recipient_token.clone()
            } else {
                pair.caregiver_token.clone()
            };
            let side = if from_recipient { 'r' } else { 'c' };
            let measured = !self.is_slow(pair_index);
            let session = pair.session_id.clone();
            let recipient_socket = socket_index(pair_index, !from_recipient);
            let (server, sent_at, expected, failed) = (
                cluster.sending_to(recipient_socket).clone(),
                self.sent_at.clone(),
                expected.clone(),
                failed.clone(),
            );
            let (message, base) = (self.next_message, self.base);
            senders.push(tokio::spawn(async move {
                sent_at[message].store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                let input = json!({ "sessionId": session, "body": format!("b{message}:{side}"),
                    "clientMessageId": format!("c{message}-{}", uuid::Uuid::now_v7()) });
                match server
                    .graphql(Some(&token), SEND, json!({ "input": input }))
                    .await
                {
                    Ok(_) if measured => expected.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => 0,
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }));
            self.next_message += 1;
        }
        let offered = self.next_message - first;
        for sender in senders {
            let _ = sender.await;
        }
        let memory_at_end_of_sending = cluster.resident_bytes();
        tokio::time::sleep(DRAIN).await;
        let server_cpu = cpu.server_spent(cluster);
        let cpu_per_message = cpu.per_message(cluster, offered);
        let stall_left = self.stall.saturating_sub(self.base.elapsed());
        if self.slow_sockets > 0 && !stall_left.is_zero() {
            tokio::time::sleep(stall_left + Duration::from_secs(2)).await;
        }
        let expected = expected.load(Ordering::Relaxed);
        let latencies = std::mem::take(
            &mut *self
                .tally
                .latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        Phase {
            offered,
            expected,
            received: self.tally.received.swap(0, Ordering::Relaxed),
            lost: expected.saturating_sub(latencies.len() as u64),
            latencies,
            duplicates: self.tally.duplicates.swap(0, Ordering::Relaxed),
            reordered: self.tally.reordered.swap(0, Ordering::Relaxed),
            errors: self.tally.errors.swap(0, Ordering::Relaxed) + failed.load(Ordering::Relaxed),
            memory_at_end_of_sending,
            server_cpu,
            cpu_per_message,
        }
    }

    /// Sockets connected and read.
    pub fn sockets(&self) -> usize {
        self.readers.len()
    }
}

impl Drop for Audience {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

pub async fn fanout(cluster: &Cluster, plan: Plan) -> Result<bool, Error> {
    let mut audience = Audience::connect(cluster, &plan, 1).await?;
    let memory_before = cluster.resident_bytes();
    let phase = audience.run_phase(cluster, &plan).await;
    println!(
        "fanout: {} sockets ({} stalled for {} s), {} msg/s offered for {} s ({} sent)",
        audience.sockets(),
        audience.slow_sockets,
        plan.stall.as_secs(),
        plan.rate,
        plan.duration.as_secs(),
        phase.offered
    );
    println!(
        "  measured deliveries {} of {} expected; all deliveries incl. echoes {}",
        phase.latencies.len(),
        phase.expected,
        phase.received
    );
    let clean = phase.clean();
    println!(
        "  send-to-receive latency: {}",
        percentiles(phase.latencies)
    );
    println!(
        "  lost {}, duplicated {}, reordered {}, errors {}",
        phase.lost, phase.duplicates, phase.reordered, phase.errors
    );
    if let (Some(before), Some(during)) = (memory_before, phase.memory_at_end_of_sending) {
        println!(
            "  server resident memory: {:.1} MiB connected, {:.1} MiB at the end of sending",
            mib(before),
            mib(during)
        );
    }
    if let Some(by_process) = cluster.resident_by_process() {
        println!("  {by_process}");
    }
    if let Some(cpu_spent) = phase.cpu_per_message {
        println!("  {cpu_spent} (sending and delivering)");
    }
    Ok(clean)
}

/// Reads one socket until aborted: checks every payload, records recipient latencies.
async fn read(
    mut listener: Listener,
    base: Instant,
    sent_at: Arc<Vec<AtomicU64>>,
    tally: Arc<Tally>,
    stall: Duration,
) {
    if !stall.is_zero() {
        tokio::time::sleep(stall).await;
    }
    let mut seen = HashSet::new();
    let mut last_seq = 0;
    while let Some(Ok(frame)) = listener.socket.next().await {
        let Message::Text(text) = frame else { continue };
        let Ok(message) = serde_json::from_str::<Value>(&text) else {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if message["type"] != "next" {
            continue;
        }
        if message["payload"].get("errors").is_some() {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if message["id"] != "m" {
            continue;
        }
        let added = &message["payload"]["data"]["messageAdded"];
        let seq = added["seq"].as_i64().unwrap_or(0);
        let parsed = added["body"].as_str().and_then(|body| {
            let (index, side) = body.strip_prefix('b')?.split_once(':')?;
            Some((index.parse::<usize>().ok()?, side == "r"))
        });
        let Some((index, from_recipient)) = parsed else {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        tally.received.fetch_add(1, Ordering::Relaxed);
        if !seen.insert(index) {
            tally.duplicates.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if seq <= last_seq {
            tally.reordered.fetch_add(1, Ordering::Relaxed);
        }
        last_seq = seq;
        // The sender's own screens get an echo; latency is measured at the other member.
        if from_recipient != listener.is_recipient && stall.is_zero() {
            let start = Duration::from_nanos(
                sent_at
                    .get(index)
                    .map_or(0, |at| at.load(Ordering::Relaxed)),
            );
            let latency = base.elapsed().saturating_sub(start);
            tally
                .latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(latency);
        }
    }
}

/// sendMessage at saturation: `clients` members, each sending one message after another
/// through an instance other than the one its partner's socket would be on.
pub async fn write(cluster: &Cluster, clients: usize, duration: Duration) -> Result<bool, Error> {
    println!(
        "setup: {} pairs through the public API (not counted)",
        pairs_for(clients)
    );
    let pairs = setup::pairs(cluster.setup(), pairs_for(clients)).await?;
    let partner_socket = |client: usize| socket_index(client / 2, !client.is_multiple_of(2));
    let cpu = CpuMeter::start(cluster);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..clients)
        .map(|client| {
            let pair = pairs[client / 2].clone();
            let token = if client % 2 == 0 { pair.recipient_token } else { pair.caregiver_token };
            let server = cluster.sending_to(partner_socket(client)).clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0u64;
                let mut index = 0u64;
                while Instant::now() < deadline {
                    let input = json!({ "sessionId": pair.session_id, "body": format!("w{client}-{index}"),
                        "clientMessageId": format!("w{client}-{index}-{}", uuid::Uuid::now_v7()) });
                    let sent = Instant::now();
                    match server.graphql(Some(&token), SEND, json!({ "input": input })).await {
                        Ok(_) => latencies.push(sent.elapsed()),
                        Err(_) => failures += 1,
                    }
                    index += 1;
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for worker in workers {
        let (mut worker_latencies, worker_failures) = worker.await?;
        latencies.append(&mut worker_latencies);
        failures += worker_failures;
    }
    let elapsed = started.elapsed();
    println!(
        "write: {clients} concurrent clients for {:.1} s, no subscribers",
        elapsed.as_secs_f64()
    );
    if let Some(spread) = cluster.senders_spread("clients", (0..clients).map(partner_socket)) {
        println!("  {spread}");
    }
    println!(
        "  {:.0} sendMessage/s ({} sent, {failures} failed)",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies.len()
    );
    if let Some(cpu_spent) = cpu.per_message(cluster, latencies.len()) {
        println!("  {cpu_spent}");
    }
    println!("  latency: {}", percentiles(latencies));
    Ok(failures == 0)
}
