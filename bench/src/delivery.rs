//! Push delivery: caregivers send their care recipients messages at a fixed rate (open loop);
//! each message makes a MESSAGE_RECEIVED notification whose push job the server's workers
//! send to the fake FCM (`fake_fcm`, its own process). Measures from the client's send, and
//! from the sendMessage answer (when the message and its job are committed), to the fake's
//! receipt; lost and duplicated pushes; the server's CPU per push.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use crate::{
    api::Error,
    cluster::{Cluster, socket_index},
    fake_fcm::wall_nanos,
    report::{CpuMeter, mib, percentiles},
    setup,
};

const SEND: &str = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }";
const REGISTER_DEVICE: &str =
    "mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) { id } }";

/// A delivery run.
pub struct Plan {
    /// The fake FCM's address (`host:port`).
    pub fake: String,
    pub pairs: usize,
    pub rate: u32,
    pub duration: Duration,
    /// How long after the last send a push may still arrive before it counts as lost.
    pub drain: Duration,
    /// Registers no device, so that no push is made: what the same sends cost without
    /// their pushes.
    pub no_devices: bool,
}

/// One sent message: its id and when its send started and was answered (wall clock, ns).
struct Sent {
    id: String,
    started: u64,
    answered: u64,
}

/// Runs the sends, each through an instance other than the one its care recipient's socket
/// would be on, and reports the pushes that came of them; fails on any lost or duplicated
/// push or failed send.
pub async fn delivery(cluster: &Cluster, plan: Plan) -> Result<bool, Error> {
    let fake = FakeClient::new(&plan.fake);
    fake.stats()
        .await
        .map_err(|err| format!("no fake FCM at {}: {err}", plan.fake))?;
    println!(
        "setup: {} pairs, {} (not counted)",
        plan.pairs,
        if plan.no_devices {
            "no device: nothing is pushed"
        } else {
            "an FCM device for each care recipient"
        }
    );
    let server = cluster.setup();
    let pairs = setup::pairs(server, plan.pairs).await?;
    let with_devices = if plan.no_devices {
        &pairs[..0]
    } else {
        &pairs[..]
    };
    let registered: Vec<Result<Value, Error>> = stream::iter(with_devices)
        .map(|pair| {
            let token = format!("bench-{}", uuid::Uuid::now_v7().simple());
            server.graphql(
                Some(&pair.recipient_token),
                REGISTER_DEVICE,
                json!({ "input": { "fcm": { "token": token, "label": "bench" } } }),
            )
        })
        .buffer_unordered(16)
        .collect()
        .await;
    registered.into_iter().collect::<Result<Vec<_>, _>>()?;
    // Nothing of the setup is pushed (no device existed then); start from an empty count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    fake.reset().await?;
    let fake_before = fake.stats().await?;

    let memory_before = cluster.resident_bytes();
    let cpu = CpuMeter::start(cluster);
    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(plan.rate)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    let first_send = wall_nanos();
    let deadline = started + plan.duration;
    let mut senders = Vec::new();
    let mut offered = 0usize;
    while Instant::now() < deadline {
        ticker.tick().await;
        let pair_index = offered % pairs.len();
        let pair = &pairs[pair_index];
        let server = cluster.sending_to(socket_index(pair_index, true)).clone();
        let (sent, failures) = (sent.clone(), failures.clone());
        let token = pair.caregiver_token.clone();
        let input = json!({ "sessionId": pair.session_id, "body": format!("push {offered}"),
            "clientMessageId": format!("p{offered}-{}", uuid::Uuid::now_v7()) });
        senders.push(tokio::spawn(async move {
            let at = wall_nanos();
            match server
                .graphql(Some(&token), SEND, json!({ "input": input }))
                .await
            {
                Ok(data) => {
                    let answered = wall_nanos();
                    let id = data["sendMessage"]["id"].as_str().unwrap_or_default();
                    lock(&sent).push(Sent {
                        id: id.to_owned(),
                        started: at,
                        answered,
                    });
                }
                Err(err) => lock(&failures).push(err.to_string()),
            }
        }));
        offered += 1;
    }
    for sender in senders {
        let _ = sender.await;
    }
    let sending = started.elapsed();
    let memory_at_end_of_sending = cluster.resident_bytes();
    let sent = std::mem::take(&mut *lock(&sent));
    let failures = std::mem::take(&mut *lock(&failures));

    // Wait until every sent message's push arrived, or the drain window closed.
    // With no device, nothing is coming: the sends' cost alone is measured.
    let drain = if plan.no_devices {
        Duration::ZERO
    } else {
        plan.drain
    };
    let drain_ends = Instant::now() + drain;
    let mut fake_after = fake.stats().await?;
    while fake_after.unique < sent.len() as u64 && Instant::now() < drain_ends {
        tokio::time::sleep(Duration::from_millis(200)).await;
        fake_after = fake.stats().await?;
    }
    let waited = started.elapsed();
    let server_cpu = cpu.server_spent(cluster);
    let cpu_per_push = cpu.per_message(cluster, sent.len());
    let receipts = fake.receipts().await?;

    let mut from_send = Vec::with_capacity(sent.len());
    let mut from_answer = Vec::with_capacity(sent.len());
    let mut lost = 0u64;
    let mut last_receipt = first_send;
    for message in &sent {
        match receipts.get(&message.id) {
            Some(&at) => {
                from_send.push(Duration::from_nanos(at.saturating_sub(message.started)));
                from_answer.push(Duration::from_nanos(at.saturating_sub(message.answered)));
                last_receipt = last_receipt.max(at);
            }
            None => lost += 1,
        }
    }
    let unexpected = receipts.len() as u64 - (sent.len() as u64 - lost);
    let received = from_send.len();
    let span = Duration::from_nanos(last_receipt.saturating_sub(first_send));

    println!(
        "delivery: {} pairs, sendMessage at {}/s for {} s; fake FCM answers after its latency",
        plan.pairs,
        plan.rate,
        plan.duration.as_secs()
    );
    let recipient_sockets = (0..pairs.len()).map(|pair| socket_index(pair, true));
    if let Some(spread) = cluster.senders_spread("caregivers", recipient_sockets) {
        println!("  {spread}");
    }
    println!(
        "  sent {} of {offered} offered in {:.2} s ({:.0} sendMessage/s), {} failed",
        sent.len(),
        sending.as_secs_f64(),
        sent.len() as f64 / sending.as_secs_f64(),
        failures.len()
    );
    if let Some(first) = failures.first() {
        println!("  first failure: {first}");
    }
    if plan.no_devices {
        println!("  no device registered: {received} pushes received (none expected)");
    } else {
        println!(
            "  pushes received {received}: {:.0} pushes/s from the first send to the last push ({:.2} s)",
            received as f64 / span.as_secs_f64().max(1e-9),
            span.as_secs_f64()
        );
        println!("  send → push received: {}", percentiles(from_send.clone()));
        println!(
            "  sendMessage answered (message and job committed) → push received: {}",
            percentiles(from_answer)
        );
        println!(
            "  lost {lost} (not received {:.1} s after the last send), duplicates {}, unexpected {}, without an id {}",
            plan.drain.as_secs_f64(),
            fake_after.duplicates.saturating_sub(fake_before.duplicates),
            unexpected,
            fake_after.unnamed
        );
    }
    if let (Some(before), Some(end)) = (memory_before, memory_at_end_of_sending) {
        println!(
            "  server resident memory: {:.1} MiB before, {:.1} MiB at the end of sending, peak {:.1} MiB",
            mib(before),
            mib(end),
            mib(cluster.peak_resident_bytes().unwrap_or(0))
        );
    }
    if let Some(by_process) = cluster.resident_by_process() {
        println!("  {by_process}");
    }
    if let Some(spent) = server_cpu {
        println!(
            "  server CPU {:.2} s over {:.2} s (sending and draining)",
            spent.as_secs_f64(),
            waited.as_secs_f64()
        );
    }
    if let Some(per_message) = cpu_per_push {
        let (figure, what) = if plan.no_devices {
            (
                per_message,
                "sendMessage and its notification, nothing pushed",
            )
        } else {
            (
                per_message.replacen("per message", "per push", 1),
                "sendMessage, its notification and the push",
            )
        };
        println!(
            "  {figure} ({what}); fake FCM {:.0} µs",
            fake_after.cpu_micros.saturating_sub(fake_before.cpu_micros) as f64
                / sent.len().max(1) as f64
        );
    }
    if plan.no_devices {
        return Ok(failures.is_empty() && received == 0);
    }
    Ok(lost == 0
        && fake_after.duplicates == fake_before.duplicates
        && failures.is_empty()
        && !sent.is_empty())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fake FCM's own counters.
struct FakeStats {
    unique: u64,
    duplicates: u64,
    unnamed: u64,
    cpu_micros: u64,
}

struct FakeClient {
    base: String,
    http: reqwest::Client,
}

impl FakeClient {
    fn new(addr: &str) -> Self {
        FakeClient {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    async fn stats(&self) -> Result<FakeStats, Error> {
        let stats: Value = self
            .http
            .get(format!("{}/bench/stats", self.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let number = |name: &str| stats[name].as_u64().unwrap_or(0);
        Ok(FakeStats {
            unique: number("unique"),
            duplicates: number("duplicates"),
            unnamed: number("unnamed"),
            cpu_micros: number("cpuMicros"),
        })
    }

    async fn reset(&self) -> Result<(), Error> {
        self.http
            .post(format!("{}/bench/reset", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn receipts(&self) -> Result<HashMap<String, u64>, Error> {
        Ok(self
            .http
            .get(format!("{}/bench/receipts", self.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}
