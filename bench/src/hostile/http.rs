//! Hostile HTTP: the costliest documents the limits let through, an oversized body,
//! malformed JSON, batches, and password guessing.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Intruder;

/// Nesting levels (`series { occurrences { … } }`) tried first; each refusal tries one fewer.
const DEEPEST: usize = 8;
/// How many of each alias a document repeats.
const ME_ALIASES: usize = 500;
const BOOKINGS_ALIASES: usize = 200;
/// Tokens of the longest document: `id` repeated.
const TOKENS: usize = 10_000;
const BIG_BODY_BYTES: usize = 2 * 1024 * 1024;
const BATCH: usize = 100;
/// Upper bounds on a loop's iterations, beside the phase's end.
const MAX_ROUNDS: usize = 100_000;
const MAX_GUESSES: usize = 1_000_000;

const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { token } }";

/// What one request got back, as the outcome table shows it.
struct Outcome {
    label: String,
    /// The server asked to slow down, or could not be reached: pause before the next one.
    back_off: bool,
    /// A limit or a rule refused the document (so a smaller one is tried next).
    refused: bool,
}

/// The cheap-to-send, costly-to-serve documents, built once.
struct Documents {
    me_aliases: Vec<u8>,
    bookings_aliases: Vec<u8>,
    tokens: Vec<u8>,
    big_body: Vec<u8>,
    malformed: Vec<u8>,
    batch: Vec<u8>,
}

impl Documents {
    fn new() -> Self {
        let me: String = (0..ME_ALIASES)
            .map(|i| format!("a{i}: me {{ id }} "))
            .collect();
        let bookings: String = (0..BOOKINGS_ALIASES)
            .map(|i| format!("b{i}: bookings(first: 100) {{ nodes {{ id startsAt }} }} "))
            .collect();
        let padding = "x".repeat(BIG_BODY_BYTES);
        let one = json!({ "query": "{ me { id } bookings(first: 100) { nodes { id } } }" });
        Documents {
            me_aliases: query(&format!("{{ {me} }}")),
            bookings_aliases: query(&format!("{{ {bookings} }}")),
            tokens: query(&format!("{{ me {{ {} }} }}", "id ".repeat(TOKENS))),
            // A comment costs no token: only the body size limit stops this one.
            big_body: query(&format!("{{ me {{ id }} }}\n#{padding}")),
            malformed: br#"{"query": "{ me { id } }", "variables": {"#.to_vec(),
            batch: Value::Array(vec![one; BATCH]).to_string().into_bytes(),
        }
    }
}

fn query(document: &str) -> Vec<u8> {
    json!({ "query": document }).to_string().into_bytes()
}

/// `bookings -> series -> occurrences -> series -> …`: every level multiplies the rows by a
/// series' length.
fn deep(levels: usize) -> Vec<u8> {
    let mut selection = "id".to_owned();
    for _ in 0..levels {
        selection = format!("id series {{ id occurrences {{ {selection} }} }}");
    }
    query(&format!(
        "{{ bookings(first: 100) {{ nodes {{ {selection} }} }} }}"
    ))
}

/// Cycles through the costly documents until the phase ends, as the intruder.
pub async fn costly_queries(intruder: Arc<Intruder>) {
    let documents = Documents::new();
    let mut levels = DEEPEST;
    let mut rounds = 0;
    while intruder.running() && rounds < MAX_ROUNDS {
        rounds += 1;
        // Refused: the same round tries one level less, down to what the limits let through.
        loop {
            let outcome = post(&intruder, true, deep(levels)).await;
            let attack = format!("deep nesting, {levels} levels");
            intruder
                .record(&attack, &outcome.label, outcome.back_off)
                .await;
            if !outcome.refused || levels == 1 || !intruder.running() {
                break;
            }
            levels -= 1;
        }
        for (attack, body) in [
            ("500 aliases of me", &documents.me_aliases),
            ("200 aliases of bookings", &documents.bookings_aliases),
            ("10,000 tokens", &documents.tokens),
            ("2 MB body", &documents.big_body),
            ("malformed JSON", &documents.malformed),
            ("batch of 100", &documents.batch),
        ] {
            if !intruder.running() {
                return;
            }
            let outcome = post(&intruder, true, body.clone()).await;
            intruder
                .record(attack, &outcome.label, outcome.back_off)
                .await;
        }
    }
}

/// Wrong passwords for one account, one after another, until the phase ends.
pub async fn guess_passwords(intruder: Arc<Intruder>) {
    let mut guesses = 0;
    while intruder.running() && guesses < MAX_GUESSES {
        guesses += 1;
        let input =
            json!({ "email": intruder.guessed_email, "password": format!("guess {guesses}") });
        let body = json!({ "query": LOGIN, "variables": { "input": input } });
        let outcome = post(&intruder, false, body.to_string().into_bytes()).await;
        intruder
            .record("login guessing", &outcome.label, outcome.back_off)
            .await;
    }
}

/// POSTs `body` to `/graphql` (as the intruder when `signed_in`) within the request budget.
async fn post(intruder: &Intruder, signed_in: bool, body: Vec<u8>) -> Outcome {
    let mut request = intruder
        .http
        .post(format!("{}/graphql", intruder.server.url))
        .header("content-type", "application/json")
        .timeout(intruder.budget())
        .body(body);
    if signed_in {
        request = request.bearer_auth(&intruder.token);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => return failed(&err),
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(bytes) => classify(status, &bytes),
        Err(err) => failed(&err),
    }
}

fn failed(err: &reqwest::Error) -> Outcome {
    let label = if err.is_timeout() {
        "no answer within the client's timeout"
    } else if err.is_connect() {
        "connection refused"
    } else {
        "connection error"
    };
    Outcome {
        label: label.to_owned(),
        back_off: true,
        refused: false,
    }
}

/// The status and the first `extensions.code` of the answer (of any answer in a batch).
fn classify(status: u16, body: &[u8]) -> Outcome {
    let answer: Value = serde_json::from_slice(body).unwrap_or_default();
    let answers = match &answer {
        Value::Array(answers) => answers.iter().collect(),
        single => vec![single],
    };
    let code = answers
        .iter()
        .filter_map(|answer| answer["errors"].as_array())
        .flatten()
        .map(|error| error["extensions"]["code"].as_str().unwrap_or("no code"))
        .next();
    let rate_limited = status == 429 || code == Some("RATE_LIMITED");
    let label = match code {
        Some(code) => format!("HTTP {status} {code}"),
        None if status == 200 => "HTTP 200 ok".to_owned(),
        None => format!("HTTP {status}"),
    };
    Outcome {
        label,
        back_off: rate_limited,
        refused: !rate_limited && (status >= 400 || code.is_some()),
    }
}
