//! Talking to a server: GraphQL over HTTP, graphql-transport-ws sockets, a process's memory
//! and CPU time.

use std::{net::IpAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        self, Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
    },
};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// One server under test, reached at its base URL.
#[derive(Clone)]
pub struct Server {
    pub url: String,
    http: reqwest::Client,
}

impl Server {
    /// A client for the server at `url`, keeping enough idle connections for open-loop sends
    /// not to reconnect each time.
    pub fn new(url: &str) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            url: url.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// Whether the server is on this machine's loopback, where client sockets may come from
    /// any 127.x.y.z address.
    pub fn is_loopback(&self) -> bool {
        let host = self
            .url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .unwrap_or_default();
        host == "localhost"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Runs one operation; a GraphQL error is an error.
    pub async fn graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Result<Value, Error> {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response: Value = request.send().await?.json().await?;
        if let Some(errors) = response.get("errors") {
            return Err(format!("GraphQL error: {errors}").into());
        }
        Ok(response["data"].clone())
    }

    /// A socket upgraded to graphql-transport-ws, before `connection_init`; a refused upgrade
    /// keeps its HTTP status in the error.
    pub async fn upgrade(&self) -> Result<Socket, tungstenite::Error> {
        self.upgrade_from(None).await
    }

    /// [`Server::upgrade`] from the local address `source` (when given), so that sockets
    /// spread over several loopback addresses do not exhaust one address's ephemeral ports.
    /// The client's buffers are sized for small messages, as an idle mobile client's are:
    /// a hundred thousand sockets at the library's default of 128 KiB each would not fit.
    pub async fn upgrade_from(&self, source: Option<IpAddr>) -> Result<Socket, tungstenite::Error> {
        let url = self.url.replacen("http", "ws", 1);
        let mut request = format!("{url}/graphql").into_client_request()?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let host = request.uri().host().unwrap_or_default().to_owned();
        let port = request.uri().port_u16().unwrap_or(80);
        let server = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))?;
        let tcp = match server {
            std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(source) = source {
            choose_port_at_connect(&tcp);
            tcp.bind((source, 0).into())?;
        }
        let stream = tcp.connect(server).await?;
        stream.set_nodelay(true)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0);
        let (socket, _) = tokio_tungstenite::client_async_with_config(
            request,
            MaybeTlsStream::Plain(stream),
            Some(config),
        )
        .await?;
        Ok(socket)
    }

    /// A socket that completed `connection_init` with `token`, from `source` when given.
    pub async fn socket(&self, token: &str, source: Option<IpAddr>) -> Result<Socket, Error> {
        let mut socket = self.upgrade_from(source).await?;
        let init = json!({ "type": "connection_init", "payload": { "token": token } });
        socket.send(Message::Text(init.to_string().into())).await?;
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => Ok(socket),
            other => Err(format!("no connection_ack: {other:?}").into()),
        }
    }
}

/// Lets the system choose a bound socket's local port when it connects, not when it binds:
/// a bind to port 0 must find a port free for every destination, which scans the ports in
/// use and slows each new socket once tens of thousands are open; at connect, a port only
/// needs to be free for this destination (Linux's `IP_BIND_ADDRESS_NO_PORT`).
fn choose_port_at_connect(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let enable: libc::c_int = 1;
    // SAFETY: setsockopt reads an int of the given size from a pointer to a live local.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::from_ref(&enable).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One kB figure of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), in bytes.
pub fn memory_bytes_of(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time used by every `postgres` process now running (the database's share of a run,
/// when the server uses a local PostgreSQL; zero on SQLite).
pub fn postgres_cpu_time() -> Duration {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(cpu_time_of)
        .sum()
}

/// CPU time this load tool has used so far.
pub fn own_cpu_time() -> Option<Duration> {
    cpu_time_of(std::process::id())
}

/// User and system time of a process, from `/proc/<pid>/stat` (in USER_HZ = 100 ticks).
pub fn cpu_time_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// Sends a graphql-transport-ws subscribe message.
pub async fn subscribe(
    socket: &mut Socket,
    id: &str,
    query: &str,
    variables: Value,
) -> Result<(), Error> {
    let message = json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } });
    socket
        .send(Message::Text(message.to_string().into()))
        .await?;
    Ok(())
}
