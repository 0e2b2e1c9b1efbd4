//! Events as they travel between instances: JSON envelopes that each stay under PostgreSQL's
//! 8,000-byte `NOTIFY` payload limit.
//!
//! An envelope carries whole events (a message with its body, a booking row), so a receiving
//! instance hands them to its subscribers without reading anything. An event too large for
//! one envelope travels as the topics it concerns instead: their subscribers there are told
//! they missed events and read the item from the database, as after any gap.

use serde::Deserialize;
use uuid::Uuid;

use super::{Event, Topic};

/// The largest payload one envelope may have, under PostgreSQL's limit of 8,000 bytes.
pub const MAX_PAYLOAD: usize = 7_900;

/// One envelope as received.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    /// When it was published, in microseconds since the Unix epoch: the bus's lag.
    pub at: i64,
    #[serde(default)]
    pub events: Vec<Event>,
    /// Topics of events too large to travel.
    #[serde(default)]
    pub missed: Vec<Topic>,
}

/// How every envelope of instance `from` begins, so that an instance passes over its own
/// (it delivered those events itself) without reading them.
pub fn sender_prefix(from: Uuid) -> String {
    format!(r#"{{"from":"{from}","#)
}

/// The envelopes that carry `events` from instance `from`, published at `at` (microseconds
/// since the Unix epoch), in order; empty when there are none.
pub fn envelopes(from: Uuid, at: i64, events: &[Event]) -> Vec<String> {
    let mut packer = Packer::new(format!(r#"{}"at":{at},"#, sender_prefix(from)));
    for event in events {
        match serde_json::to_string(event) {
            Ok(encoded) if packer.fits_alone(&encoded) => packer.carry(encoded),
            _ => packer.miss(event),
        }
    }
    packer.finish()
}

/// Fills envelopes one event at a time, each up to [`MAX_PAYLOAD`].
struct Packer {
    head: String,
    payloads: Vec<String>,
    carried: Vec<String>,
    /// The size of the envelope `carried` would be sealed into.
    size: usize,
}

/// What an envelope adds to its head and its events: `"events":[` and `]}`.
const EVENTS_FRAME: usize = r#""events":[]}"#.len();

impl Packer {
    fn new(head: String) -> Self {
        Self {
            size: head.len() + EVENTS_FRAME,
            head,
            payloads: Vec::new(),
            carried: Vec::new(),
        }
    }

    /// Whether an envelope holding only `encoded` stays under the limit.
    fn fits_alone(&self, encoded: &str) -> bool {
        self.head.len() + EVENTS_FRAME + encoded.len() <= MAX_PAYLOAD
    }

    /// Adds an encoded event, sealing the envelope under way first when it would not fit.
    fn carry(&mut self, encoded: String) {
        if self.size + encoded.len() + 1 > MAX_PAYLOAD {
            self.seal();
        }
        self.size += encoded.len() + 1;
        self.carried.push(encoded);
    }

    /// An event too large to travel goes as its topics, in its place: what came before it
    /// leaves first.
    fn miss(&mut self, event: &Event) {
        self.seal();
        let missed = serde_json::to_string(&event.topics()).unwrap_or_default();
        self.payloads
            .push(format!(r#"{}"missed":{missed}}}"#, self.head));
    }

    fn seal(&mut self) {
        if !self.carried.is_empty() {
            self.payloads.push(format!(
                r#"{}"events":[{}]}}"#,
                self.head,
                self.carried.join(",")
            ));
            self.carried.clear();
        }
        self.size = self.head.len() + EVENTS_FRAME;
    }

    fn finish(mut self) -> Vec<String> {
        self.seal();
        self.payloads
    }
}

/// The envelope in `payload`; `None` when it is not one this version understands (a
/// newer instance's, during a rolling deploy).
pub fn open(payload: &str) -> Option<Envelope> {
    serde_json::from_str(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typing(session_id: Uuid) -> Event {
        Event::Typing {
            session_id,
            user_id: Uuid::now_v7(),
            members: [Uuid::now_v7(), Uuid::now_v7()],
            typing: true,
        }
    }

    fn sessions(events: &[Event]) -> Vec<Uuid> {
        events
            .iter()
            .map(|event| match event {
                Event::Typing { session_id, .. } => *session_id,
                other => panic!("not a typing event: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn many_events_fill_envelopes_in_order_each_under_the_limit() {
        let from = Uuid::now_v7();
        let events: Vec<Event> = (0..200).map(|_| typing(Uuid::now_v7())).collect();
        let payloads = envelopes(from, 42, &events);
        assert!(payloads.len() > 1, "200 events do not fit one envelope");
        let mut received = Vec::new();
        for payload in &payloads {
            assert!(payload.len() <= MAX_PAYLOAD, "{} bytes", payload.len());
            assert!(payload.starts_with(&sender_prefix(from)));
            let envelope = open(payload).expect("an envelope");
            assert_eq!(envelope.at, 42);
            received.extend(sessions(&envelope.events));
        }
        assert_eq!(received, sessions(&events));
    }

    #[test]
    fn an_event_too_large_travels_as_its_topics_in_its_place() {
        let user_id = Uuid::now_v7();
        let large = Event::NotificationAdded {
            notification: std::sync::Arc::new(entity::notification::Model {
                id: Uuid::now_v7(),
                user_id,
                seq: 7,
                kind: entity::enums::NotificationType::MessageReceived,
                title: "t".to_owned(),
                body: "é".repeat(MAX_PAYLOAD),
                data: serde_json::json!({}),
                is_read: false,
                read_at: None,
                dedupe_key: None,
                created_at: chrono::Utc::now(),
            }),
            unread_count: 1,
        };
        let (first, last) = (Uuid::now_v7(), Uuid::now_v7());
        let events = [typing(first), large, typing(last)];
        let payloads = envelopes(Uuid::now_v7(), 1, &events);
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let opened: Vec<Envelope> = payloads.iter().filter_map(|p| open(p)).collect();
        assert_eq!(opened.len(), 3, "{payloads:?}");
        assert_eq!(sessions(&opened[0].events), [first]);
        assert_eq!(opened[1].missed, [Topic::User(user_id)]);
        assert!(opened[1].events.is_empty());
        assert_eq!(sessions(&opened[2].events), [last]);
    }

    #[test]
    fn no_events_no_envelope_and_garbage_is_not_one() {
        assert!(envelopes(Uuid::now_v7(), 0, &[]).is_empty());
        assert!(open("not json").is_none());
        assert!(open(r#"{"from":"x","events":7}"#).is_none());
    }
}
