//! The `hostile` scenario: how much a few hostile clients slow the well-behaved ones.
//!
//! The fan-out runs twice on the same sockets: alone, then beside H hostile users who, for
//! the whole second phase, send the costliest documents the limits let through, flood
//! subscriptions and guess passwords. Every refusal is a normal outcome for them: it is
//! counted by code, status or close code, and they carry on until the phase ends.

mod http;
mod ws;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    api::{Error, Server},
    cluster::Cluster,
    fanout::{self, Audience, Phase},
    report::{Quantiles, mib, ms},
    setup,
};

/// The longest a hostile client waits for one answer: it gives up, counts a timeout and
/// goes on, so a server that hangs cannot hang the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The pause after a `RATE_LIMITED`, a close or a failed connection, before trying again.
const BACK_OFF: Duration = Duration::from_millis(20);
/// How long phase 2 waits for hostile loops to notice the end of the phase.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The goal: hostile clients at most double the well-behaved p99.
const P99_GOAL_RATIO: f64 = 2.0;

/// A hostile run: the fan-out plan of both phases and how many hostile users join phase 2.
pub struct Plan {
    pub fanout: fanout::Plan,
    pub hostile: usize,
}

/// What the hostile clients got back, by attack and outcome (code, HTTP status or close code).
#[derive(Default)]
pub struct Outcomes(Mutex<BTreeMap<(String, String), u64>>);

impl Outcomes {
    /// Counts `times` more of `outcome` for `attack`.
    pub fn add(&self, attack: &str, outcome: &str, times: u64) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *counts
            .entry((attack.to_owned(), outcome.to_owned()))
            .or_default() += times;
    }

    fn print(&self) {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        println!("hostile requests by outcome:");
        println!("  {:<32} {:<40} {:>9}", "attack", "outcome", "count");
        for ((attack, outcome), count) in counts.iter() {
            println!("  {attack:<32} {outcome:<40} {count:>9}");
        }
    }
}

/// One hostile user and what its attacks share: its own account, its own chat (with a
/// weekly series behind it), the account it guesses passwords for, and the phase's end.
pub struct Intruder {
    server: Server,
    http: reqwest::Client,
    token: String,
    session_id: String,
    guessed_email: String,
    deadline: Instant,
    outcomes: Arc<Outcomes>,
}

impl Intruder {
    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    /// How long the next wait may last: a few seconds, never past the end of the phase.
    fn budget(&self) -> Duration {
        REQUEST_TIMEOUT.min(self.deadline.saturating_duration_since(Instant::now()))
    }

    /// Counts one outcome, and pauses when the server asked for it.
    async fn record(&self, attack: &str, outcome: &str, back_off: bool) {
        self.outcomes.add(attack, outcome, 1);
        if back_off {
            tokio::time::sleep(BACK_OFF.min(self.budget())).await;
        }
    }
}

/// A hostile user's account before the phase: registered with a partner, a weekly series
/// of the longest length allowed, and the chat of its first booking.
struct Recruit {
    token: String,
    session_id: String,
    guessed_email: String,
}

/// The servers' resident memory (summed) sampled every 100 ms for the whole run.
struct MemorySampler {
    window_max: Arc<AtomicU64>,
    overall_max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl MemorySampler {
    fn start(cluster: &Cluster) -> Self {
        let sampler = MemorySampler {
            window_max: Arc::default(),
            overall_max: Arc::default(),
            stop: Arc::default(),
        };
        let (cluster, window, overall, stop) = (
            cluster.clone(),
            sampler.window_max.clone(),
            sampler.overall_max.clone(),
            sampler.stop.clone(),
        );
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(100));
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                if let Some(resident) = cluster.resident_bytes() {
                    window.fetch_max(resident, Ordering::Relaxed);
                    overall.fetch_max(resident, Ordering::Relaxed);
                }
            }
        });
        sampler
    }

    /// The highest sample since the last call.
    fn window_max(&self) -> u64 {
        self.window_max.swap(0, Ordering::Relaxed)
    }
}

impl Drop for MemorySampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs both phases and prints them side by side with the server's memory and the hostile
/// outcomes; fails, as `fanout` does, on any lost, duplicated, reordered or refused delivery
/// in either phase (the p99 goal is reported, not enforced).
pub async fn hostile(cluster: &Cluster, plan: Plan) -> Result<bool, Error> {
    let memory = MemorySampler::start(cluster);
    let mut audience = Audience::connect(cluster, &plan.fanout, 2).await?;
    println!(
        "setup: {} hostile users, each with a weekly series of 104 bookings (not counted)",
        plan.hostile
    );
    let recruits = recruit(cluster.setup(), plan.hostile).await?;

    memory.window_max();
    let baseline = audience.run_phase(cluster, &plan.fanout).await;
    let baseline_memory = memory.window_max();

    let outcomes = Arc::new(Outcomes::default());
    // The phase is the sends and the wait for their deliveries after them.
    let deadline = Instant::now() + plan.fanout.duration + fanout::DRAIN;
    let attackers = Attackers::start(cluster, recruits, deadline, &outcomes)?;
    let under_attack = audience.run_phase(cluster, &plan.fanout).await;
    attackers.stop().await;
    let hostile_memory = memory.window_max();

    println!(
        "hostile: {} sockets, {} msg/s for {} s per phase; {} hostile users in phase 2",
        audience.sockets(),
        plan.fanout.rate,
        plan.fanout.duration.as_secs(),
        plan.hostile
    );
    let clean = baseline.clean() && under_attack.clean();
    let goal_met = print_comparison(&baseline, &under_attack, [baseline_memory, hostile_memory]);
    println!(
        "  p99 goal (hostile under {P99_GOAL_RATIO}x baseline): {}",
        if goal_met { "met" } else { "NOT met" }
    );
    print_memory(cluster, &memory);
    outcomes.print();
    Ok(clean)
}

async fn recruit(server: &Server, count: usize) -> Result<Vec<Recruit>, Error> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut recruits = Vec::new();
    for index in 0..count {
        let series = json!({ "frequency": "WEEKLY", "count": 104 });
        let chat = setup::chat(server, &format!("hostile-{run}-{index}"), series).await?;
        recruits.push(Recruit {
            token: chat.recipient.token,
            session_id: chat.session_id,
            guessed_email: chat.caregiver.email,
        });
    }
    Ok(recruits)
}

/// The hostile clients of phase 2, on a runtime of their own with one worker thread: they
/// cannot take the well-behaved readers' threads, and cost the machine at most one core of
/// client work, as a remote attacker's traffic would cost it none. Each hostile user attacks
/// one instance, taken round-robin, so that every instance has its share.
struct Attackers {
    runtime: tokio::runtime::Runtime,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Attackers {
    fn start(
        cluster: &Cluster,
        recruits: Vec<Recruit>,
        deadline: Instant,
        outcomes: &Arc<Outcomes>,
    ) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let mut tasks = Vec::new();
        for (index, recruit) in recruits.into_iter().enumerate() {
            let intruder = Arc::new(Intruder {
                server: cluster.round_robin(index).clone(),
                http: http.clone(),
                token: recruit.token,
                session_id: recruit.session_id,
                guessed_email: recruit.guessed_email,
                deadline,
                outcomes: outcomes.clone(),
            });
            tasks.push(runtime.spawn(http::costly_queries(intruder.clone())));
            tasks.push(runtime.spawn(http::guess_passwords(intruder.clone())));
            for _ in 0..ws::FLOODING_SOCKETS {
                tasks.push(runtime.spawn(ws::flood(intruder.clone())));
            }
            for _ in 0..ws::SILENT_SOCKETS {
                tasks.push(runtime.spawn(ws::silent(intruder.clone())));
            }
        }
        Ok(Attackers { runtime, tasks })
    }

    /// Waits for every loop to end by itself; one that overstays the grace is cut off.
    async fn stop(self) {
        let grace = Instant::now() + STOP_GRACE;
        for task in self.tasks {
            let left = grace.saturating_duration_since(Instant::now());
            let abort = task.abort_handle();
            if tokio::time::timeout(left, task).await.is_err() {
                abort.abort();
            }
        }
        self.runtime.shutdown_background();
    }
}

/// One line of the comparison: a figure of a phase, as printed.
type PhaseFigure = fn(&Phase) -> String;

/// Prints both phases side by side; returns whether the p99 goal was met.
fn print_comparison(baseline: &Phase, under_attack: &Phase, memory: [u64; 2]) -> bool {
    let before = Quantiles::of(baseline.latencies.clone());
    let during = Quantiles::of(under_attack.latencies.clone());
    println!(
        "  {:<34} {:>14} {:>14} {:>8}",
        "", "baseline", "hostile", "ratio"
    );
    let mut p99_ratio = f64::INFINITY;
    for (name, a, b) in [
        ("p50 send-to-receive", before.p50, during.p50),
        ("p95", before.p95, during.p95),
        ("p99", before.p99, during.p99),
        ("max", before.max, during.max),
    ] {
        let ratio = ms(b) / ms(a);
        if name == "p99" {
            p99_ratio = ratio;
        }
        println!(
            "  {name:<34} {:>11.1} ms {:>11.1} ms {ratio:>7.2}x",
            ms(a),
            ms(b)
        );
    }
    let rows: [(&str, PhaseFigure); 6] = [
        ("sent", |phase| phase.offered.to_string()),
        ("measured deliveries / expected", |phase| {
            format!("{}/{}", phase.latencies.len(), phase.expected)
        }),
        ("lost / duplicated / reordered", |phase| {
            format!("{}/{}/{}", phase.lost, phase.duplicates, phase.reordered)
        }),
        ("errors", |phase| phase.errors.to_string()),
        ("server CPU (s)", |phase| {
            phase
                .server_cpu
                .map_or("?".to_owned(), |cpu| format!("{:.2}", cpu.as_secs_f64()))
        }),
        ("server VmRSS at end of sending", |phase| {
            phase
                .memory_at_end_of_sending
                .map_or("?".to_owned(), |bytes| format!("{:.1} MiB", mib(bytes)))
        }),
    ];
    for (name, value) in rows {
        println!(
            "  {name:<34} {:>14} {:>14}",
            value(baseline),
            value(under_attack)
        );
    }
    let sampled = |bytes: u64| match bytes {
        0 => "?".to_owned(),
        bytes => format!("{:.1} MiB", mib(bytes)),
    };
    println!(
        "  {:<34} {:>14} {:>14}",
        "server VmRSS max (100 ms samples)",
        sampled(memory[0]),
        sampled(memory[1])
    );
    for phase in [baseline, under_attack] {
        if let Some(cpu) = &phase.cpu_per_message {
            println!("  {cpu}");
        }
    }
    p99_ratio < P99_GOAL_RATIO
}

fn print_memory(cluster: &Cluster, memory: &MemorySampler) {
    let peak = cluster.peak_resident_bytes();
    let now = cluster.resident_bytes();
    let sampled = memory.overall_max.load(Ordering::Relaxed);
    match (peak, now) {
        (Some(peak), Some(now)) => println!(
            "server memory: VmHWM {:.1} MiB (peak since start); VmRSS every 100 ms: max {:.1} MiB, {:.1} MiB at the end",
            mib(peak),
            mib(sampled),
            mib(now)
        ),
        _ => println!("server memory: unknown (pass --server-pid)"),
    }
    if let Some(by_process) = cluster.resident_by_process() {
        println!("  {by_process}");
    }
}
