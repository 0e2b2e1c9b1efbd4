//! The fixture, made through the public API: users in pairs, each pair with an accepted
//! booking, an enabled chat and an opening message. Not counted in any figure.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use crate::api::{Error, Server};

/// How long setup keeps retrying a call the server refuses with `RATE_LIMITED` (sign-up
/// limits apply to the fixture as to anyone) or fails with a retryable error (a timeout on a
/// busy machine, which keeps nothing): the fixture is slower, not broken.
const RATE_LIMIT_PATIENCE: Duration = Duration::from_secs(120);

/// One care recipient and one caregiver who can chat.
#[derive(Clone, Debug)]
pub struct Pair {
    pub session_id: String,
    /// Where `messageAdded` resumes: after the opening message, so that whatever order a
    /// socket's subscriptions start in, no message sent later can be missed.
    pub opening_cursor: String,
    pub recipient_token: String,
    pub caregiver_token: String,
}

/// A registered user and how to act as them.
#[derive(Clone, Debug)]
pub struct Member {
    pub token: String,
    pub id: String,
    pub email: String,
}

/// A care recipient and a caregiver with a booking and its chat.
pub struct Chat {
    pub recipient: Member,
    pub caregiver: Member,
    pub session_id: String,
}

/// `count` pairs: the first `count` of `fixture` when that file exists, else new ones, which
/// are written to `fixture` (when given) for the next run. Making 50,000 pairs takes long
/// (each sign-up hashes a password); a fixture is reused against the database it was made in,
/// restored to that state where a run sent messages.
pub async fn pairs_in(
    server: &Server,
    count: usize,
    fixture: Option<&Path>,
) -> Result<Vec<Pair>, Error> {
    if let Some(fixture) = fixture.filter(|fixture| fixture.exists()) {
        let saved: Vec<Value> = serde_json::from_slice(&std::fs::read(fixture)?)?;
        if saved.len() < count {
            return Err(format!(
                "{} holds {} pairs, fewer than the {count} needed",
                fixture.display(),
                saved.len()
            )
            .into());
        }
        println!("setup: {count} pairs read from {}", fixture.display());
        return Ok(saved.iter().take(count).map(Pair::from_json).collect());
    }
    println!("setup: {count} pairs through the public API (not counted)");
    let made = pairs(server, count).await?;
    if let Some(fixture) = fixture {
        let saved: Vec<Value> = made.iter().map(Pair::to_json).collect();
        std::fs::write(fixture, serde_json::to_vec(&saved)?)?;
        println!("setup: {count} pairs written to {}", fixture.display());
    }
    Ok(made)
}

impl Pair {
    fn to_json(&self) -> Value {
        json!({ "session": self.session_id, "cursor": self.opening_cursor,
            "recipient": self.recipient_token, "caregiver": self.caregiver_token })
    }

    fn from_json(saved: &Value) -> Pair {
        Pair {
            session_id: text(&saved["session"]),
            opening_cursor: text(&saved["cursor"]),
            recipient_token: text(&saved["recipient"]),
            caregiver_token: text(&saved["caregiver"]),
        }
    }
}

/// Creates `count` pairs, a few at a time.
pub async fn pairs(server: &Server, count: usize) -> Result<Vec<Pair>, Error> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let made: Vec<Result<Pair, Error>> = stream::iter(0..count)
        .map(|index| pair(server, format!("{run}-{index}")))
        .buffer_unordered(16)
        .collect()
        .await;
    made.into_iter().collect()
}

async fn pair(server: &Server, tag: String) -> Result<Pair, Error> {
    let chat = chat(server, &tag, Value::Null).await?;
    let opening = call(
        server,
        Some(&chat.recipient.token),
        "mutation($input: SendMessageInput!) { sendMessage(input: $input) { cursor } }",
        json!({ "input": { "sessionId": chat.session_id, "body": "opening",
            "clientMessageId": format!("opening-{tag}") } }),
    )
    .await?;
    Ok(Pair {
        session_id: chat.session_id,
        opening_cursor: text(&opening["sendMessage"]["cursor"]),
        recipient_token: chat.recipient.token,
        caregiver_token: chat.caregiver.token,
    })
}

/// Registers a care recipient and a caregiver tagged `tag`, books them (as a series when
/// `recurrence` is not null), accepts the first booking and enables its chat.
pub async fn chat(server: &Server, tag: &str, recurrence: Value) -> Result<Chat, Error> {
    let recipient = register(server, "CARE_RECIPIENT", tag).await?;
    let caregiver = register(server, "CAREGIVER", tag).await?;
    let starts = chrono::Utc::now() + chrono::Duration::days(1);
    let booking = call(
        server,
        Some(&recipient.token),
        "mutation($input: CreateBookingInput!) { createBooking(input: $input) { id } }",
        json!({ "input": { "caregiverId": caregiver.id, "startsAt": starts.to_rfc3339(),
            "endsAt": (starts + chrono::Duration::hours(1)).to_rfc3339(),
            "recurrence": recurrence } }),
    )
    .await?;
    let booking_id = booking["createBooking"]["id"].clone();
    call(
        server,
        Some(&caregiver.token),
        "mutation($id: UUID!) { acceptBooking(id: $id) { id } }",
        json!({ "id": booking_id }),
    )
    .await?;
    let chat = call(
        server,
        Some(&recipient.token),
        "mutation($id: UUID!) { enableChat(bookingId: $id) { id } }",
        json!({ "id": booking_id }),
    )
    .await?;
    Ok(Chat {
        session_id: text(&chat["enableChat"]["id"]),
        recipient,
        caregiver,
    })
}

async fn register(server: &Server, role: &str, tag: &str) -> Result<Member, Error> {
    let email = format!("{}-{tag}@bench.example.com", role.to_lowercase());
    let input = json!({ "email": email, "password": "bench password",
        "displayName": format!("{role} {tag}"), "role": role });
    let data = call(
        server,
        None,
        "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
        json!({ "input": input }),
    )
    .await?;
    Ok(Member {
        token: text(&data["register"]["token"]),
        id: text(&data["register"]["user"]["id"]),
        email,
    })
}

/// Runs one setup operation, waiting out `RATE_LIMITED` refusals and retryable failures for
/// a while.
async fn call(
    server: &Server,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Result<Value, Error> {
    let started = Instant::now();
    loop {
        match server.graphql(token, query, variables.clone()).await {
            Err(err) if worth_retrying(&err) && started.elapsed() < RATE_LIMIT_PATIENCE => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            outcome => return outcome,
        }
    }
}

/// A refusal for the rate (`RATE_LIMITED`) or a failure the server calls retryable.
fn worth_retrying(err: &Error) -> bool {
    let said = err.to_string();
    said.contains("\"RATE_LIMITED\"") || said.contains("\"retryable\":true")
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}
