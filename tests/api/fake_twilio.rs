//! A stand-in for Twilio's Video REST API on loopback that records every request exactly,
//! keeps its rooms (unique names while in progress, `completed` once ended), answers as
//! Twilio does (53113 for a name in use, 53112 for completing a room that is over, 20404
//! for an unknown room), and fails on demand: a status code, a Twilio error code, a hang,
//! a response lost after the work was done, or a slow answer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// One request as Twilio would have received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
    /// When it arrived (wall clock), for measurements.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The REST calls caregraph makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /v1/Rooms`
    Create,
    /// `POST /v1/Rooms/{sid}` with `Status=completed`
    Complete,
    /// `GET /v1/Rooms/{sid or name}`
    Fetch,
}

/// How a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// This status, with Twilio's error body and no code.
    Status(u16),
    /// This status with Twilio's error body and error `code`.
    Twilio { status: u16, code: u32 },
    /// Nothing is done and no answer ever comes.
    Hang,
    /// The work is done, and the answer never comes.
    Lost,
    /// The work is done and answered after this many milliseconds.
    Slow(u64),
}

#[derive(Debug, Clone)]
struct Room {
    name: String,
    completed: bool,
}

#[derive(Default)]
struct Fake {
    log: Vec<Recorded>,
    /// By sid.
    rooms: HashMap<String, Room>,
    /// What fails next: the op, how, and how many more times (`None`: until healed).
    failures: Vec<(Op, Failure, Option<usize>)>,
    /// Completions that Twilio carried out, by sid.
    completions: HashMap<String, usize>,
}

type Shared = Arc<Mutex<Fake>>;

pub struct FakeTwilio {
    pub base_url: String,
    fake: Shared,
}

impl FakeTwilio {
    pub async fn start() -> Self {
        let fake: Shared = Arc::default();
        let app = Router::new().fallback(record).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, fake }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.fake.lock().unwrap().log.clone()
    }

    /// The requests of `op`.
    pub fn requests_of(&self, op: Op) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| op_of(&r.method, &r.path) == Some(op))
            .collect()
    }

    /// `op` fails with `failure` the next `times` times (`None`: until [`Self::heal`]).
    pub fn fail(&self, op: Op, failure: Failure, times: Option<usize>) {
        self.fake
            .lock()
            .unwrap()
            .failures
            .push((op, failure, times));
    }

    /// Every failure is off.
    pub fn heal(&self) {
        self.fake.lock().unwrap().failures.clear();
    }

    /// How many times Twilio completed room `sid` (at most one can succeed).
    pub fn completions(&self, sid: &str) -> usize {
        self.fake
            .lock()
            .unwrap()
            .completions
            .get(sid)
            .copied()
            .unwrap_or(0)
    }

    /// The sid of the room named `name`, if one was created.
    pub fn sid_of(&self, name: &str) -> Option<String> {
        self.fake
            .lock()
            .unwrap()
            .rooms
            .iter()
            .find(|(_, room)| room.name == name)
            .map(|(sid, _)| sid.clone())
    }

    /// Whether room `sid` is over.
    pub fn is_completed(&self, sid: &str) -> bool {
        self.fake
            .lock()
            .unwrap()
            .rooms
            .get(sid)
            .is_some_and(|room| room.completed)
    }

    /// Twilio ended room `sid` on its own (a timeout), and no callback said so.
    pub fn end_room(&self, sid: &str) {
        if let Some(room) = self.fake.lock().unwrap().rooms.get_mut(sid) {
            room.completed = true;
        }
    }

    /// Twilio no longer knows room `sid`.
    pub fn forget_room(&self, sid: &str) {
        self.fake.lock().unwrap().rooms.remove(sid);
    }
}

fn op_of(method: &str, path: &str) -> Option<Op> {
    match (method, path.strip_prefix("/v1/Rooms")?) {
        ("POST", "") => Some(Op::Create),
        ("POST", _) => Some(Op::Complete),
        ("GET", rest) if !rest.is_empty() => Some(Op::Fetch),
        _ => None,
    }
}

fn twilio_error(status: u16, code: Option<u32>, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (
        status,
        Json(json!({
            "code": code,
            "message": message,
            "more_info": code.map(|code| format!("https://www.twilio.com/docs/errors/{code}")),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn room_json(sid: &str, room: &Room) -> serde_json::Value {
    json!({
        "sid": sid,
        "unique_name": room.name,
        "status": if room.completed { "completed" } else { "in-progress" },
    })
}

async fn record(
    State(fake): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = uri.path().to_owned();
    let op = op_of(method.as_str(), &path);
    let failure = {
        let mut fake = fake.lock().unwrap();
        fake.log.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            authorization: headers
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            form: form.clone(),
            at: chrono::Utc::now(),
        });
        let found = fake
            .failures
            .iter_mut()
            .position(|(failing, _, times)| Some(*failing) == op && *times != Some(0));
        found.map(|at| {
            let (_, failure, times) = &mut fake.failures[at];
            if let Some(left) = times {
                *left -= 1;
            }
            *failure
        })
    };
    match failure {
        Some(Failure::Status(status)) => {
            return twilio_error(status, None, "the fake was told to fail");
        }
        Some(Failure::Twilio { status, code }) => {
            return twilio_error(status, Some(code), "the fake was told to fail");
        }
        Some(Failure::Hang) => std::future::pending::<()>().await,
        Some(Failure::Slow(millis)) => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        }
        Some(Failure::Lost) | None => {}
    }
    let answer = answer(&fake, op, &path, &form);
    if failure == Some(Failure::Lost) {
        std::future::pending::<()>().await;
    }
    answer
}

/// What Twilio does and says for a request that does not fail.
fn answer(fake: &Shared, op: Option<Op>, path: &str, form: &[(String, String)]) -> Response {
    let mut fake = fake.lock().unwrap();
    let target = path.trim_start_matches("/v1/Rooms").trim_start_matches('/');
    match op {
        Some(Op::Create) => {
            let name = form
                .iter()
                .find(|(key, _)| key == "UniqueName")
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            if fake
                .rooms
                .values()
                .any(|room| room.name == name && !room.completed)
            {
                return twilio_error(400, Some(53113), "Room exists");
            }
            let sid = format!("RM{}", uuid::Uuid::new_v4().simple());
            let room = Room {
                name,
                completed: false,
            };
            let body = room_json(&sid, &room);
            fake.rooms.insert(sid, room);
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Some(Op::Complete) => {
            let Some(room) = fake.rooms.get_mut(target) else {
                return twilio_error(404, Some(20404), "The requested resource was not found");
            };
            if room.completed {
                return twilio_error(400, Some(53112), "Room status is invalid");
            }
            room.completed = true;
            let body = room_json(target, room);
            *fake.completions.entry(target.to_owned()).or_default() += 1;
            Json(body).into_response()
        }
        Some(Op::Fetch) => {
            let found = fake
                .rooms
                .get_key_value(target)
                .or_else(|| {
                    fake.rooms
                        .iter()
                        .find(|(_, room)| room.name == target && !room.completed)
                })
                .map(|(sid, room)| room_json(sid, room));
            match found {
                Some(body) => Json(body).into_response(),
                None => twilio_error(404, Some(20404), "The requested resource was not found"),
            }
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
