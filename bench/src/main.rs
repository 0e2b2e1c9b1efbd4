//! caregraph-bench: how many connected users one instance holds, how fast a message reaches
//! its recipient, and how much a few hostile clients slow that down. Speaks HTTP and
//! graphql-transport-ws to running servers on loopback (one, or several sharing a database
//! and an event bus), checks every payload, and reports loss, duplicates and reordering.

mod api;
mod cluster;
mod delivery;
mod fake_fcm;
mod fanout;
mod hostile;
mod report;
mod setup;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Load generator for one or more caregraph servers on loopback")]
struct Cli {
    /// The server's base URL. Repeat it (or give a comma-separated list) for several instances
    /// sharing a database: sockets are spread over them round-robin, and each message is sent
    /// through an instance other than its recipient's.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8000")]
    url: Vec<String>,
    /// The server's process id, to read its resident memory and CPU time. Repeat it (or give a
    /// comma-separated list) for several instances: their figures are summed.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    #[command(subcommand)]
    scenario: Scenario,
}

/// The well-behaved load of a fan-out: C connections, R messages per second, D seconds.
#[derive(Args)]
struct Load {
    /// Connected users, each with three subscriptions.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// sendMessage per second, open loop.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Seconds of sending (per phase, for `hostile`).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// A file of pairs reused between runs: written by the first run, read by the next ones.
    /// Each run sends messages, so restore the database the fixture was made in before
    /// reusing it (docs/benchmarks.md).
    #[arg(long)]
    fixture: Option<PathBuf>,
}

impl Load {
    fn plan(&self, slow_percent: f64, stall: Duration) -> fanout::Plan {
        fanout::Plan {
            connections: self.connections,
            fixture: self.fixture.clone(),
            rate: self.rate,
            duration: Duration::from_secs(self.seconds),
            slow_percent,
            stall,
        }
    }
}

#[derive(Subcommand)]
enum Scenario {
    /// C connections, each subscribed to messageAdded, typing and unreadNotificationCount:
    /// server memory per connection and connections initialised per second.
    Idle {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// A file of pairs reused between runs: written by the first run, read by the next
        /// ones (an idle run sends nothing, so the database needs no restoring).
        #[arg(long)]
        fixture: Option<PathBuf>,
        /// Seconds between the last connection and the memory reading, for what the server
        /// does once its sockets are idle.
        #[arg(long, default_value_t = 2)]
        settle_seconds: u64,
    },
    /// With C connected, sendMessage at R per second (open loop) for D seconds: latency from
    /// the start of the send to the recipient's subscription receiving it.
    Fanout {
        #[command(flatten)]
        load: Load,
        /// Percent of connections that stop reading for `stall_seconds` (slow readers).
        #[arg(long, default_value_t = 0.0)]
        slow_percent: f64,
        #[arg(long, default_value_t = 60)]
        stall_seconds: u64,
    },
    /// The fan-out twice on the same sockets, alone and then beside H hostile users (costly
    /// documents, subscription floods, password guessing): how much they slow the others.
    Hostile {
        #[command(flatten)]
        load: Load,
        /// Hostile users in the second phase.
        #[arg(long, default_value_t = 8)]
        hostile: usize,
    },
    /// sendMessage at saturation from N concurrent clients, no subscribers.
    Write {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Push delivery: caregivers send their care recipients (each with an FCM device)
    /// messages at R per second (open loop) for D seconds; the server's job workers push
    /// each one to the fake FCM at `--fake-addr` (run `fake-fcm` first, and start the server
    /// with the service account it writes). Latency from the send to the fake's receipt,
    /// lost and duplicated pushes, server CPU per push.
    Delivery {
        /// Where `fake-fcm` listens.
        #[arg(long, default_value = "127.0.0.1:8201")]
        fake_addr: String,
        /// Pairs (care recipient and caregiver) the messages are spread over.
        #[arg(long, default_value_t = 200)]
        pairs: usize,
        /// sendMessage per second, open loop: one push each.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// How long after the last send a push may still arrive before it counts as lost.
        #[arg(long, default_value_t = 10)]
        drain_seconds: u64,
        /// Registers no device, so nothing is pushed: the cost of the same sends alone.
        #[arg(long)]
        no_devices: bool,
    },
    /// A fake FCM for `delivery`, serving until killed: grants any token request and
    /// answers each `messages:send` 200 after `--latency-ms`, noting when each arrived.
    FakeFcm {
        #[arg(long, default_value = "127.0.0.1:8201")]
        addr: SocketAddr,
        /// How long each `messages:send` takes to answer.
        #[arg(long, default_value_t = 50)]
        latency_ms: u64,
        /// Writes a service account JSON file whose `token_uri` is this fake, for the
        /// server's `FCM_SERVICE_ACCOUNT_FILE`.
        #[arg(long)]
        write_service_account: Option<String>,
    },
    /// CI's short run: 50 connections, 5 seconds at 100/s; fails on any loss,
    /// duplicate, reordering or error.
    Smoke,
}

#[tokio::main]
async fn main() -> ExitCode {
    raise_fd_limit();
    let cli = Cli::parse();
    let cluster = match cluster::Cluster::new(&cli.url, cli.server_pid) {
        Ok(cluster) => cluster,
        Err(err) => {
            eprintln!("bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.scenario {
        Scenario::Idle {
            connections,
            fixture,
            settle_seconds,
        } => {
            let settle = Duration::from_secs(settle_seconds);
            fanout::idle(&cluster, connections, fixture.as_deref(), settle).await
        }
        Scenario::Fanout {
            load,
            slow_percent,
            stall_seconds,
        } => {
            let plan = load.plan(slow_percent, Duration::from_secs(stall_seconds));
            fanout::fanout(&cluster, plan).await
        }
        Scenario::Hostile { load, hostile } => {
            let fanout = load.plan(0.0, Duration::ZERO);
            hostile::hostile(&cluster, hostile::Plan { fanout, hostile }).await
        }
        Scenario::Write { clients, seconds } => {
            fanout::write(&cluster, clients, Duration::from_secs(seconds)).await
        }
        Scenario::Delivery {
            fake_addr,
            pairs,
            rate,
            seconds,
            drain_seconds,
            no_devices,
        } => {
            let plan = delivery::Plan {
                fake: fake_addr,
                pairs: pairs.max(1),
                rate: rate.max(1),
                duration: Duration::from_secs(seconds),
                drain: Duration::from_secs(drain_seconds),
                no_devices,
            };
            delivery::delivery(&cluster, plan).await
        }
        Scenario::FakeFcm {
            addr,
            latency_ms,
            write_service_account,
        } => {
            let latency = Duration::from_millis(latency_ms);
            fake_fcm::serve(addr, latency, write_service_account.as_deref()).await
        }
        Scenario::Smoke => {
            let plan = fanout::Plan {
                connections: 50,
                fixture: None,
                rate: 100,
                duration: Duration::from_secs(5),
                slow_percent: 0.0,
                stall: Duration::ZERO,
            };
            fanout::fanout(&cluster, plan).await
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("bench: FAILED: lost, duplicated, reordered or erroneous deliveries");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Thousands of sockets need thousands of file descriptors: raise the soft limit to the hard one.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
