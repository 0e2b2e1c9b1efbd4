//! A small SMTP server on loopback (no TLS: the mailer is pointed at it with `?tls=none`)
//! that records each message's envelope and data, with scripted failures; and a reader
//! for the multipart messages it receives.

use std::sync::{Arc, Mutex};

use base64::{Engine, engine::general_purpose::STANDARD};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

/// One message as the relay received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The data after dot-unstuffing, CRLF line ends kept.
    pub data: String,
}

#[derive(Default)]
struct Script {
    /// Answer 451 to this many `DATA` commands.
    data_failures: usize,
    /// Answer 550 to `RCPT TO` for these addresses.
    unknown_mailboxes: Vec<String>,
    /// Accept connections and never greet.
    silent: bool,
    messages: Vec<Mail>,
}

pub struct FakeSmtp {
    pub port: u16,
    state: Arc<Mutex<Script>>,
}

impl FakeSmtp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<Mutex<Script>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, shared.clone()));
            }
        });
        Self { port, state }
    }

    /// The `SMTP_URL` of this relay.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    pub fn fail_data(&self, times: usize) {
        self.state.lock().unwrap().data_failures = times;
    }

    pub fn unknown_mailbox(&self, address: &str) {
        self.state
            .lock()
            .unwrap()
            .unknown_mailboxes
            .push(address.to_owned());
    }

    pub fn go_silent(&self) {
        self.state.lock().unwrap().silent = true;
    }

    pub fn messages(&self) -> Vec<Mail> {
        self.state.lock().unwrap().messages.clone()
    }
}

/// `<address>` out of `MAIL FROM:<address> PARAMS`.
fn angle_address(argument: &str) -> String {
    argument
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}

async fn session(stream: TcpStream, state: Arc<Mutex<Script>>) {
    if state.lock().unwrap().silent {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return;
    }
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut reply = async |text: &str| write.write_all(text.as_bytes()).await.is_ok();
    if !reply("220 fake.test ESMTP ready\r\n").await {
        return;
    }
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") {
            "250-fake.test\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n".to_owned()
        } else if upper.starts_with("HELO") {
            "250 fake.test\r\n".to_owned()
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = Some(angle_address(&command));
            rcpt_to.clear();
            "250 2.1.0 ok\r\n".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            let address = angle_address(&command);
            if mail_from.is_none() {
                "503 5.5.1 MAIL first\r\n".to_owned()
            } else if state.lock().unwrap().unknown_mailboxes.contains(&address) {
                "550 5.1.1 no such mailbox\r\n".to_owned()
            } else {
                rcpt_to.push(address);
                "250 2.1.5 ok\r\n".to_owned()
            }
        } else if upper == "DATA" {
            let fail = {
                let mut state = state.lock().unwrap();
                let fail = state.data_failures > 0;
                state.data_failures = state.data_failures.saturating_sub(1);
                fail
            };
            if fail {
                "451 4.3.0 try again later\r\n".to_owned()
            } else if mail_from.is_none() || rcpt_to.is_empty() {
                "503 5.5.1 no valid recipients\r\n".to_owned()
            } else {
                if !reply("354 end data with <CR><LF>.<CR><LF>\r\n").await {
                    return;
                }
                let mut data = String::new();
                loop {
                    line.clear();
                    if read.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let text = String::from_utf8_lossy(&line);
                    if text == ".\r\n" || text == ".\n" {
                        break;
                    }
                    data.push_str(text.strip_prefix('.').unwrap_or(&text));
                }
                state.lock().unwrap().messages.push(Mail {
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                });
                "250 2.0.0 queued\r\n".to_owned()
            }
        } else if upper == "RSET" {
            mail_from = None;
            rcpt_to.clear();
            "250 2.0.0 ok\r\n".to_owned()
        } else if upper.starts_with("NOOP") {
            "250 2.0.0 ok\r\n".to_owned()
        } else if upper == "QUIT" {
            reply("221 2.0.0 bye\r\n").await;
            return;
        } else {
            "502 5.5.2 not implemented\r\n".to_owned()
        };
        if !reply(&answer).await {
            return;
        }
    }
}

/// A received message read the way a mail client shows it.
#[derive(Debug)]
pub struct Parsed {
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub html: String,
}

impl Parsed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The top-level headers and the text/plain and text/html parts of a
/// multipart/alternative message, transfer encodings undone.
pub fn parse(data: &str) -> Parsed {
    let (headers, body) = split_headers(data);
    let content_type = find(&headers, "content-type").unwrap();
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    let boundary = content_type
        .split(';')
        .find_map(|param| param.trim().strip_prefix("boundary="))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let mut text = None;
    let mut html = None;
    let delimiter = format!("--{boundary}");
    for part in body.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let part = part.strip_suffix("\r\n").unwrap_or(part);
        let (part_headers, part_body) = split_headers(part);
        let content = decode(
            find(&part_headers, "content-transfer-encoding").unwrap_or("7bit"),
            part_body,
        );
        let kind = find(&part_headers, "content-type").unwrap_or("text/plain");
        if kind.starts_with("text/plain") {
            text = Some(content);
        } else if kind.starts_with("text/html") {
            html = Some(content);
        }
    }
    Parsed {
        headers,
        text: text.expect("a text/plain part"),
        html: html.expect("a text/html part"),
    }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Unfolded headers and the body after the blank line.
fn split_headers(data: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = data.split_once("\r\n\r\n").unwrap_or((data, ""));
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let headers = unfolded
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    (headers, body)
}

fn decode(encoding: &str, body: &str) -> String {
    match encoding.to_ascii_lowercase().as_str() {
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            String::from_utf8(STANDARD.decode(compact).unwrap()).unwrap()
        }
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'=' && i + 2 < bytes.len() {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        }
        _ => body.to_owned(),
    }
}
