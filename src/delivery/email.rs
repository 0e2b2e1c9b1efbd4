//! Email over SMTP: a pooled connection to the relay in `SMTP_URL`, multipart messages with
//! a plain-text and an HTML part, and one-click unsubscribe headers (RFC 8058).

use std::{net::IpAddr, time::Duration};

use lettre::{
    Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Mailbox, MultiPart,
        header::{Header, HeaderName, HeaderValue},
    },
    transport::smtp::{
        PoolConfig,
        authentication::Credentials,
        client::{Tls, TlsParameters},
        extension::ClientId,
    },
};
use url::{Host, Url};

use super::provider::{Email, Mailer, SendFailure, SetupError, within_timeout};
use crate::config::EmailConfig;

const PROVIDER: &str = "email";

/// Sends email through one SMTP relay.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl SmtpMailer {
    /// Reads `SMTP_URL` and `EMAIL_FROM`; connects only when the first email is sent.
    ///
    /// - `smtp://user:pass@host[:587]`: STARTTLS, required (`?tls=required` says the same);
    /// - `smtps://user:pass@host[:465]`: TLS from the first byte;
    /// - `smtp://host[:25]?tls=none`: plaintext, refused unless the host is loopback.
    ///
    /// A path (`smtp://host/mail.example.com`) is the name given in `EHLO`.
    pub fn new(config: &EmailConfig, timeout: Duration) -> Result<Self, SetupError> {
        let setup = |reason: String| SetupError {
            provider: PROVIDER,
            reason,
        };
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|error| setup(format!("EMAIL_FROM is not an address: {error}")))?;
        let url = Url::parse(config.smtp_url.expose())
            .map_err(|_| setup("SMTP_URL is not a URL".into()))?;
        let (host, loopback) = match url.host() {
            // smtp: is not a special scheme to the URL parser: an IPv4 address stays a name.
            Some(Host::Domain(name)) => (
                name.to_owned(),
                name.eq_ignore_ascii_case("localhost")
                    || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
            ),
            Some(Host::Ipv4(ip)) => (ip.to_string(), IpAddr::V4(ip).is_loopback()),
            Some(Host::Ipv6(ip)) => (ip.to_string(), IpAddr::V6(ip).is_loopback()),
            None => return Err(setup("SMTP_URL has no host".into())),
        };
        let tls_mode = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let tls_parameters = || {
            TlsParameters::new(host.clone())
                .map_err(|error| setup(format!("TLS for {host}: {error}")))
        };
        let (tls, default_port) = match (url.scheme(), tls_mode.as_deref()) {
            ("smtp", None | Some("required")) => (Tls::Required(tls_parameters()?), 587),
            ("smtps", None) => (Tls::Wrapper(tls_parameters()?), 465),
            ("smtp", Some("none")) if loopback => (Tls::None, 25),
            ("smtp", Some("none")) => {
                return Err(setup(format!(
                    "SMTP_URL: tls=none is only allowed to a loopback relay, not {host}"
                )));
            }
            (scheme, mode) => {
                return Err(setup(format!(
                    "SMTP_URL: unsupported scheme {scheme:?} with tls={mode:?} \
                     (smtp://, smtps:// or smtp://…?tls=none to loopback)"
                )));
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().idle_timeout(Duration::from_secs(60)));
        if !url.username().is_empty() {
            let user = percent_decode(url.username())
                .ok_or_else(|| setup("SMTP_URL: the user name is not UTF-8".into()))?;
            let password = percent_decode(url.password().unwrap_or_default())
                .ok_or_else(|| setup("SMTP_URL: the password is not UTF-8".into()))?;
            builder = builder.credentials(Credentials::new(user, password));
        }
        let hello = url.path().trim_matches('/');
        if !hello.is_empty() {
            builder = builder.hello_name(ClientId::Domain(hello.to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            timeout,
        })
    }

    fn message(&self, email: &Email) -> Result<Message, SendFailure> {
        let rejected = |what: &str, error: &dyn std::fmt::Display| {
            SendFailure::Rejected(format!("email: {what}: {error}"))
        };
        let address: Address = email
            .to
            .parse()
            .map_err(|error| rejected("recipient", &error))?;
        let name = email.to_name.trim();
        let to = Mailbox::new((!name.is_empty()).then(|| name.to_owned()), address);
        let unsubscribe = Url::parse(&email.unsubscribe_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "https" | "http"))
            .ok_or_else(|| rejected("unsubscribe URL", &"not an http(s) URL"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!("<{}@caregraph>", email.idempotency_key)))
            .header(ListUnsubscribe(format!("<{unsubscribe}>")))
            .header(ListUnsubscribePost)
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|error| rejected("message", &error))
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), SendFailure> {
        let message = self.message(email)?;
        let sent = async {
            self.transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|error| classify(&error))
        };
        within_timeout("email", self.timeout, sent).await
    }
}

/// 5xx answers are final (a 550 unknown mailbox too: the address may come back, and the
/// user's other channels stay); 4xx answers, timeouts and connection or TLS failures are
/// worth retrying.
fn classify(error: &lettre::transport::smtp::Error) -> SendFailure {
    let reason = format!("email: {error}");
    if error.is_permanent() || error.is_client() {
        SendFailure::Rejected(reason)
    } else {
        SendFailure::transient(reason)
    }
}

/// `List-Unsubscribe: <https://…>`.
#[derive(Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// Percent-decodes a URL's user or password.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |at: usize| bytes.get(at).and_then(|&b| (b as char).to_digit(16));
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
