//! The instances under test: one or more caregraph servers behind one database, sharing an
//! event bus. Sockets are spread over them round-robin, and each message is sent through an
//! instance other than the one holding its recipient's socket, so that a delivery has to
//! cross from one instance to another; with one instance, everything goes to it.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use crate::{
    api::{Error, Server, cpu_time_of, memory_bytes_of},
    report::mib,
};

/// Client sockets one loopback source address carries at most: below the 28,232 ephemeral
/// ports Linux offers each local address by default (32768 to 60999), with room to spare for
/// the HTTP connections that send.
const SOCKETS_PER_SOURCE: usize = 20_000;

/// The first loopback source address sockets are spread over; 127.0.0.1 is left to the
/// HTTP clients.
const FIRST_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// File descriptors a process needs besides its sockets (its database pool, listeners, logs).
const DESCRIPTORS_BESIDES_SOCKETS: u64 = 128;

/// The servers a run talks to, and the processes whose memory and CPU it reports.
#[derive(Clone)]
pub struct Cluster {
    /// Never empty.
    servers: Vec<Server>,
    pids: Vec<u32>,
}

/// The index by which a user's socket is spread: users are numbered pair by pair, the care
/// recipient first, so that the two members of a pair land on different instances.
pub fn socket_index(pair: usize, is_recipient: bool) -> usize {
    pair * 2 + usize::from(!is_recipient)
}

impl Cluster {
    /// The servers at `urls` (at least one), with `pids` their processes (any number: memory
    /// and CPU are only reported when some are known; a pid given twice counts once).
    pub fn new(urls: &[String], pids: Vec<u32>) -> Result<Self, Error> {
        let servers: Vec<Server> = urls
            .iter()
            .map(|url| url.trim())
            .filter(|url| !url.is_empty())
            .map(Server::new)
            .collect();
        if servers.is_empty() {
            return Err("no server URL given (--url)".into());
        }
        let mut distinct_pids = Vec::with_capacity(pids.len());
        for pid in pids {
            if !distinct_pids.contains(&pid) {
                distinct_pids.push(pid);
            }
        }
        Ok(Cluster {
            servers,
            pids: distinct_pids,
        })
    }

    /// Where the fixture is made: any instance sees what another wrote, so the first.
    pub fn setup(&self) -> &Server {
        &self.servers[0]
    }

    /// The instance the `index`-th client connects to, taken round-robin: for a user's
    /// socket, `index` is its [`socket_index`].
    pub fn round_robin(&self, index: usize) -> &Server {
        &self.servers[self.round_robin_position(index)]
    }

    /// The instance a message for the user of socket `socket` is sent through: the next one
    /// after the instance holding that socket ([`Cluster::round_robin`]), so never the same
    /// when there are two or more.
    pub fn sending_to(&self, socket: usize) -> &Server {
        &self.servers[self.sending_position(socket)]
    }

    /// The position in `servers` of [`Cluster::round_robin`].
    fn round_robin_position(&self, index: usize) -> usize {
        index % self.servers.len()
    }

    /// The position in `servers` of [`Cluster::sending_to`].
    fn sending_position(&self, socket: usize) -> usize {
        (socket + 1) % self.servers.len()
    }

    /// With several instances, how `sockets` sockets are spread over them; with one, nothing
    /// (a single-instance report stays as it was).
    pub fn sockets_spread(&self, sockets: usize) -> Option<String> {
        self.spread(
            "sockets",
            (0..sockets).map(|socket| self.round_robin_position(socket)),
        )
    }

    /// With several instances, how the senders writing to the users of `recipient_sockets`
    /// are spread over them; with one, nothing.
    pub fn senders_spread(
        &self,
        senders: &str,
        recipient_sockets: impl Iterator<Item = usize>,
    ) -> Option<String> {
        self.spread(
            senders,
            recipient_sockets.map(|socket| self.sending_position(socket)),
        )
    }

    /// "N servers; <what>: k on <url>, …" from the instance index of each thing spread.
    fn spread(&self, what: &str, instances: impl Iterator<Item = usize>) -> Option<String> {
        if self.servers.len() < 2 {
            return None;
        }
        let mut counts = vec![0usize; self.servers.len()];
        for instance in instances {
            counts[instance] += 1;
        }
        let parts: Vec<String> = self
            .servers
            .iter()
            .zip(counts)
            .map(|(server, count)| format!("{count} on {}", server.url))
            .collect();
        Some(format!(
            "{} servers; {what}: {}",
            self.servers.len(),
            parts.join(", ")
        ))
    }

    /// The local address of the `index`-th of `count` client sockets: with servers on
    /// loopback, sockets are spread round-robin over 127.0.0.2, 127.0.0.3, … (one address per
    /// [`SOCKETS_PER_SOURCE`]), since each local address has its own ephemeral ports; with a
    /// server elsewhere, the system chooses.
    pub fn source_address(&self, index: usize, count: usize) -> Option<IpAddr> {
        if !self.servers.iter().all(Server::is_loopback) {
            return None;
        }
        let addresses = count.div_ceil(SOCKETS_PER_SOURCE).max(1);
        let offset = u32::try_from(index % addresses).ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(u32::from(FIRST_SOURCE) + offset)))
    }

    /// Fails before connecting when `sockets` sockets cannot all be open at once: this tool
    /// and every server hold one file descriptor per socket, and a limit met halfway through a
    /// run would show as errors, not as the limit it is.
    pub fn check_descriptors(&self, sockets: usize) -> Result<(), Error> {
        let needed = sockets as u64 + DESCRIPTORS_BESIDES_SOCKETS;
        let mut short = Vec::new();
        if let Some(own) = open_files_limit("self")
            && own < needed
        {
            short.push(format!("this tool may open {own}"));
        }
        let per_server =
            (sockets as u64).div_ceil(self.servers.len() as u64) + DESCRIPTORS_BESIDES_SOCKETS;
        for pid in &self.pids {
            if let Some(limit) = open_files_limit(&pid.to_string())
                && limit < per_server
            {
                short.push(format!("server pid {pid} may open {limit}"));
            }
        }
        if short.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{sockets} sockets need about {needed} file descriptors in this tool and \
             {per_server} in each server, but {}: raise the hard limit on open files \
             (`ulimit -Hn`, systemd's LimitNOFILE, fs.nr_open) for both; see docs/benchmarks.md",
            short.join(" and ")
        )
        .into())
    }

    /// The servers' resident memory in bytes, summed over their processes, if their pids are
    /// known.
    pub fn resident_bytes(&self) -> Option<u64> {
        self.memory_bytes("VmRSS:")
    }

    /// The most the servers have ever held resident, in bytes: the kernel's record catches a
    /// spike between two samples. Summed over the processes, so with several it may exceed
    /// what they ever held at one moment.
    pub fn peak_resident_bytes(&self) -> Option<u64> {
        self.memory_bytes("VmHWM:")
    }

    /// One kB figure of `/proc/<pid>/status`, in bytes, summed over the processes; unknown
    /// if any of them cannot be read.
    fn memory_bytes(&self, field: &str) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids
            .iter()
            .map(|&pid| memory_bytes_of(pid, field))
            .sum()
    }

    /// With several processes, each one's resident memory now, as printed; with one or
    /// none, nothing (the sum says it all).
    pub fn resident_by_process(&self) -> Option<String> {
        if self.pids.len() < 2 {
            return None;
        }
        let each: Vec<String> = self
            .pids
            .iter()
            .map(|&pid| match memory_bytes_of(pid, "VmRSS:") {
                Some(bytes) => format!("pid {pid} {:.1} MiB", mib(bytes)),
                None => format!("pid {pid} ?"),
            })
            .collect();
        Some(format!(
            "server resident memory by process: {}",
            each.join(", ")
        ))
    }

    /// CPU time the servers have used so far, summed over their processes, if their pids are
    /// known: per message, it says where a run's cost went, which latency alone cannot.
    pub fn cpu_time(&self) -> Option<Duration> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|&pid| cpu_time_of(pid)).sum()
    }
}

/// The soft limit on open files of process `pid` ("self" for this one), from
/// `/proc/<pid>/limits`; the server raises its soft limit to the hard one when it starts.
fn open_files_limit(pid: &str) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn cluster(urls: &[&str]) -> Cluster {
        let urls: Vec<String> = urls.iter().map(|url| url.to_string()).collect();
        match Cluster::new(&urls, Vec::new()) {
            Ok(cluster) => cluster,
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn a_message_is_never_sent_through_its_recipients_instance() {
        for instances in 2..5 {
            let urls: Vec<String> = (0..instances).map(|i| format!("http://s{i}")).collect();
            let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
            let cluster = cluster(&urls);
            for pair in 0..20 {
                for is_recipient in [true, false] {
                    let socket = socket_index(pair, is_recipient);
                    assert_ne!(
                        cluster.round_robin(socket).url,
                        cluster.sending_to(socket).url
                    );
                }
            }
        }
    }

    #[test]
    fn one_instance_takes_everything_and_reports_no_spread() {
        let cluster = cluster(&["http://only/"]);
        assert_eq!(cluster.round_robin(3).url, "http://only");
        assert_eq!(cluster.sending_to(3).url, "http://only");
        assert_eq!(cluster.sockets_spread(10), None);
    }

    #[test]
    fn sockets_are_spread_round_robin() {
        let cluster = cluster(&["http://a", "http://b"]);
        assert_eq!(
            cluster.sockets_spread(5).as_deref(),
            Some("2 servers; sockets: 3 on http://a, 2 on http://b")
        );
    }

    #[test]
    fn a_pid_given_twice_counts_once() {
        match Cluster::new(&["http://a".to_owned()], vec![7, 8, 7]) {
            Ok(cluster) => assert_eq!(cluster.pids, [7, 8]),
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn sockets_to_loopback_are_spread_over_one_source_address_per_twenty_thousand() {
        let local = cluster(&["http://127.0.0.1:8100"]);
        let source = |index, count| local.source_address(index, count).map(|a| a.to_string());
        assert_eq!(source(7, 10_000).as_deref(), Some("127.0.0.2"));
        let spread: HashSet<_> = (0..100_000).map(|index| source(index, 100_000)).collect();
        let expected: HashSet<_> = (2..7).map(|last| Some(format!("127.0.0.{last}"))).collect();
        assert_eq!(spread, expected);
        assert_eq!(source(5, 100_000).as_deref(), Some("127.0.0.2"));
        let remote = cluster(&["http://caregraph.example.com"]);
        assert_eq!(remote.source_address(0, 100_000), None);
    }

    #[test]
    fn no_url_is_an_error() {
        assert!(Cluster::new(&[" ".to_owned()], Vec::new()).is_err());
    }
}
