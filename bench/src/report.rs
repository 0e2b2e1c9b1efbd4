//! Latency percentiles and the printed report.

use std::time::Duration;

use crate::{
    api::{own_cpu_time, postgres_cpu_time},
    cluster::Cluster,
};

/// The quantiles of a set of latencies that the reports compare.
#[derive(Clone, Copy, Default)]
pub struct Quantiles {
    pub p50: Duration,
    pub p90: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub samples: usize,
}

impl Quantiles {
    /// Nearest-rank quantiles; all zero when there is no sample.
    pub fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Quantiles {
            p50: at(0.50),
            p90: at(0.90),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
            samples: samples.len(),
        }
    }
}

/// p50, p90, p99 and max of a set of latencies.
pub fn percentiles(samples: Vec<Duration>) -> String {
    let quantiles = Quantiles::of(samples);
    if quantiles.samples == 0 {
        return "no samples".to_owned();
    }
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        ms(quantiles.p50),
        ms(quantiles.p90),
        ms(quantiles.p99),
        ms(quantiles.max),
        quantiles.samples
    )
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// CPU spent by the servers, by PostgreSQL and by this tool over a stretch of a run, read
/// before and after: all three share the machine's cores, so the tool's own share is part of
/// what the figures cost.
pub struct CpuMeter {
    server: Option<Duration>,
    database: Duration,
    tool: Option<Duration>,
}

impl CpuMeter {
    /// Reads the counters a stretch of the run starts from.
    pub fn start(cluster: &Cluster) -> Self {
        CpuMeter {
            server: cluster.cpu_time(),
            database: postgres_cpu_time(),
            tool: own_cpu_time(),
        }
    }

    /// The servers' CPU time since `start`, summed over their processes.
    pub fn server_spent(&self, cluster: &Cluster) -> Option<Duration> {
        cluster.cpu_time()?.checked_sub(self.server?)
    }

    /// CPU microseconds per message since `start`, for the server, the database and the tool.
    pub fn per_message(&self, cluster: &Cluster, messages: usize) -> Option<String> {
        self.per(cluster, messages, "message")
    }

    /// CPU microseconds per `what` since `start`, for the server, the database and the tool.
    pub fn per(&self, cluster: &Cluster, count: usize, what: &str) -> Option<String> {
        let server_spent = self.server_spent(cluster)?;
        let database_spent = postgres_cpu_time().saturating_sub(self.database);
        let tool_spent = own_cpu_time()?.checked_sub(self.tool?)?;
        let per = |spent: Duration| spent.as_secs_f64() * 1e6 / count.max(1) as f64;
        Some(format!(
            "CPU per {what}: server {:.0} µs, PostgreSQL {:.0} µs, load tool {:.0} µs",
            per(server_spent),
            per(database_spent),
            per(tool_spent)
        ))
    }
}
