//! The booking lifecycle: who may do what, every illegal transition, recurring series, privacy.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, data, error_code, nodes};

const CREATE: &str = "mutation($input: CreateBookingInput!) {
    createBooking(input: $input) { id status startsAt endsAt notes
        careRecipient { id displayName } caregiver { id displayName }
        series { id frequency count until occurrences { id startsAt endsAt status } } } }";
const BOOKING: &str = "query($id: UUID!) { booking(id: $id) { id status } }";
const BOOKINGS: &str = "query($status: BookingStatus, $first: Int, $after: String) {
    bookings(status: $status, first: $first, after: $after) {
        edges { cursor node { id status startsAt } } pageInfo { hasNextPage endCursor } } }";

/// Every transition, for the checks that none applies.
const VERBS: [&str; 4] = ["accept", "decline", "cancel", "complete"];

fn transition(verb: &str) -> String {
    format!("mutation($id: UUID!) {{ {verb}Booking(id: $id) {{ id status }} }}")
}

/// A care recipient, a caregiver and a stranger on one server.
struct Parties {
    app: TestApp,
    recipient: TestUser,
    caregiver: TestUser,
    stranger: TestUser,
}

async fn parties() -> Parties {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Maria").await;
    let caregiver = app.register("CAREGIVER", "Nuno").await;
    let stranger = app.register("CAREGIVER", "Olga").await;
    Parties {
        app,
        recipient,
        caregiver,
        stranger,
    }
}

impl Parties {
    /// Runs `createBooking(input)` as `who`; returns the whole response.
    async fn create(&self, who: &TestUser, input: Value) -> Value {
        self.app
            .graphql(Some(&who.token), CREATE, json!({ "input": input }))
            .await
    }

    /// The recipient creates a booking from `input`, which must succeed; returns it.
    async fn created(&self, input: Value) -> Value {
        data(self.create(&self.recipient, input).await)["createBooking"].clone()
    }

    /// A pending booking `hours` from now, two hours long.
    async fn book(&self, hours: i64) -> String {
        let (starts, ends) = self.app.clock_after_hours(hours);
        let created = self
            .created(
                json!({ "caregiverId": self.caregiver.id, "startsAt": starts,
                    "endsAt": ends, "notes": " Bring the lift " }),
            )
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    async fn apply(&self, who: &TestUser, verb: &str, id: &str) -> Value {
        self.app
            .graphql(Some(&who.token), &transition(verb), json!({ "id": id }))
            .await
    }

    /// The code of the error that refuses `verb` on booking `id` to `who`.
    async fn refusal(&self, who: &TestUser, verb: &str, id: &str) -> String {
        error_code(&self.apply(who, verb, id).await)
    }

    async fn status(&self, id: &str) -> Value {
        self.app
            .ok(&self.recipient, BOOKING, json!({ "id": id }))
            .await["booking"]["status"]
            .clone()
    }
}

#[tokio::test]
async fn a_booking_lives_from_request_to_completion() {
    let p = parties().await;
    let (starts, ends) = p.app.clock_after_hours(24);
    let created = p
        .created(
            json!({ "caregiverId": p.caregiver.id, "startsAt": starts, "endsAt": ends,
                "notes": "  Bring the lift  " }),
        )
        .await;
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["notes"], "Bring the lift");
    assert_eq!(created["caregiver"]["displayName"], "Nuno");
    assert_eq!(created["careRecipient"]["displayName"], "Maria");
    assert_eq!(created["series"], json!(null));
    let id = created["id"].as_str().unwrap();

    let pending = p
        .app
        .ok(&p.caregiver, BOOKINGS, json!({ "status": "PENDING" }))
        .await;
    assert_eq!(nodes(&pending["bookings"])[0]["id"], id);

    let accepted = p.apply(&p.caregiver, "accept", id).await;
    assert_eq!(
        accepted["data"]["acceptBooking"]["status"], "ACCEPTED",
        "{accepted}"
    );
    assert_eq!(p.status(id).await, "ACCEPTED");

    assert_eq!(
        p.refusal(&p.recipient, "complete", id).await,
        "INVALID_STATE"
    );

    p.app.clock.advance(Duration::hours(27));
    let completed = p.apply(&p.recipient, "complete", id).await;
    assert_eq!(
        completed["data"]["completeBooking"]["status"], "COMPLETED",
        "{completed}"
    );
    let none_pending = p
        .app
        .ok(&p.caregiver, BOOKINGS, json!({ "status": "PENDING" }))
        .await;
    assert!(
        nodes(&none_pending["bookings"]).is_empty(),
        "{none_pending}"
    );
}

#[tokio::test]
async fn creating_a_booking_is_validated() {
    let p = parties().await;
    let now = p.app.clock_after_hours(0).0;
    let soon = p.app.clock_after_hours(2);
    let later = p.app.clock_after_hours(30).0;
    let cases: Vec<(&TestUser, Value, &str, Option<&str>)> = vec![
        (
            &p.recipient,
            json!({ "caregiverId": p.caregiver.id, "startsAt": soon.1, "endsAt": soon.0 }),
            "BAD_USER_INPUT",
            Some("endsAt"),
        ),
        (
            &p.recipient,
            json!({ "caregiverId": p.caregiver.id, "startsAt": now, "endsAt": soon.1 }),
            "BAD_USER_INPUT",
            Some("startsAt"),
        ),
        (
            &p.recipient,
            json!({ "caregiverId": p.caregiver.id, "startsAt": soon.0, "endsAt": later }),
            "BAD_USER_INPUT",
            Some("endsAt"),
        ),
        (
            &p.recipient,
            json!({ "caregiverId": p.recipient.id, "startsAt": soon.0, "endsAt": soon.1 }),
            "BAD_USER_INPUT",
            Some("caregiverId"),
        ),
        (
            &p.recipient,
            json!({ "caregiverId": uuid::Uuid::now_v7(), "startsAt": soon.0, "endsAt": soon.1 }),
            "BAD_USER_INPUT",
            Some("caregiverId"),
        ),
        (
            &p.recipient,
            json!({ "caregiverId": p.caregiver.id, "startsAt": soon.0, "endsAt": soon.1, "notes": "x".repeat(2001) }),
            "BAD_USER_INPUT",
            Some("notes"),
        ),
        (
            &p.recipient,
            json!({ "caregiverId": p.caregiver.id, "startsAt": "yesterday", "endsAt": soon.1 }),
            "BAD_USER_INPUT",
            None,
        ),
        (
            &p.stranger,
            json!({ "caregiverId": p.caregiver.id, "startsAt": soon.0, "endsAt": soon.1 }),
            "FORBIDDEN",
            None,
        ),
    ];
    for (who, input, code, field) in cases {
        let response = p.create(who, input.clone()).await;
        assert_eq!(error_code(&response), code, "{input}: {response}");
        if let Some(field) = field {
            assert_eq!(
                response["errors"][0]["extensions"]["field"], field,
                "{response}"
            );
        }
    }
    let none = p.app.ok(&p.recipient, BOOKINGS, json!({})).await;
    assert!(
        nodes(&none["bookings"]).is_empty(),
        "nothing half-written: {none}"
    );
}

#[tokio::test]
async fn illegal_transitions_are_refused_and_name_the_status() {
    let p = parties().await;
    let declined = p.book(10).await;
    p.apply(&p.caregiver, "decline", &declined).await;
    let cancelled = p.book(20).await;
    p.apply(&p.recipient, "cancel", &cancelled).await;
    let accepted = p.book(30).await;
    p.apply(&p.caregiver, "accept", &accepted).await;
    let pending = p.book(40).await;

    let cases = [
        (&declined, "accept", "declined"),
        (&declined, "decline", "declined"),
        (&declined, "cancel", "declined"),
        (&declined, "complete", "declined"),
        (&cancelled, "accept", "cancelled"),
        (&cancelled, "cancel", "cancelled"),
        (&cancelled, "complete", "cancelled"),
        (&accepted, "accept", "accepted"),
        (&accepted, "decline", "accepted"),
        (&pending, "complete", "pending"),
    ];
    for (id, verb, status) in cases {
        let response = p.apply(&p.caregiver, verb, id).await;
        assert_eq!(
            error_code(&response),
            "INVALID_STATE",
            "{verb} {status}: {response}"
        );
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(status), "{verb}: {message}");
    }
    assert_eq!(p.status(&declined).await, "DECLINED");
    assert_eq!(p.status(&accepted).await, "ACCEPTED");

    // Only the caregiver answers a request.
    for verb in ["accept", "decline"] {
        assert_eq!(
            p.refusal(&p.recipient, verb, &pending).await,
            "FORBIDDEN",
            "{verb}"
        );
    }
    assert_eq!(p.status(&pending).await, "PENDING");

    // A completed booking is final.
    p.app.clock.advance(Duration::hours(33));
    assert_eq!(
        p.refusal(&p.recipient, "cancel", &accepted).await,
        "INVALID_STATE"
    );
    p.apply(&p.caregiver, "complete", &accepted).await;
    for verb in VERBS {
        assert_eq!(
            p.refusal(&p.caregiver, verb, &accepted).await,
            "INVALID_STATE",
            "{verb}"
        );
    }
    assert_eq!(p.status(&accepted).await, "COMPLETED");

    // A pending request whose start has passed can no longer be accepted.
    p.app.clock.advance(Duration::hours(8));
    assert_eq!(
        p.refusal(&p.caregiver, "accept", &pending).await,
        "INVALID_STATE"
    );
}

#[tokio::test]
async fn a_caregiver_cannot_accept_overlapping_bookings() {
    let p = parties().await;
    let first = p.book(24).await;
    let overlapping = p.book(25).await;
    let adjacent = p.book(26).await;
    assert_eq!(
        p.apply(&p.caregiver, "accept", &first).await["data"]["acceptBooking"]["status"],
        "ACCEPTED"
    );
    let clash = p.apply(&p.caregiver, "accept", &overlapping).await;
    assert_eq!(error_code(&clash), "CONFLICT", "{clash}");
    assert!(
        clash["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&first)
    );
    assert_eq!(
        p.apply(&p.caregiver, "accept", &adjacent).await["data"]["acceptBooking"]["status"],
        "ACCEPTED"
    );
}

#[tokio::test]
async fn a_recurring_series_is_one_record_and_its_occurrences() {
    let p = parties().await;
    let (starts, ends) = p.app.clock_after_hours(24);
    let created = p
        .created(
            json!({ "caregiverId": p.caregiver.id, "startsAt": starts, "endsAt": ends,
                "recurrence": { "frequency": "WEEKLY", "count": 4 } }),
        )
        .await;
    let series = &created["series"];
    assert_eq!(series["frequency"], "WEEKLY");
    assert_eq!(series["count"], 4);
    let occurrences = series["occurrences"].as_array().unwrap();
    assert_eq!(occurrences.len(), 4);
    assert_eq!(occurrences[0]["id"], created["id"]);
    let first: DateTime<Utc> = starts.parse().unwrap();
    for (index, occurrence) in occurrences.iter().enumerate() {
        let start: DateTime<Utc> = occurrence["startsAt"].as_str().unwrap().parse().unwrap();
        let end: DateTime<Utc> = occurrence["endsAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(start, first + Duration::weeks(index as i64));
        assert_eq!(end - start, Duration::hours(2));
        assert_eq!(occurrence["status"], "PENDING");
    }
    let listed = p.app.ok(&p.caregiver, BOOKINGS, json!({})).await;
    assert_eq!(nodes(&listed["bookings"]).len(), 4);

    // Each occurrence has a life of its own.
    let second = occurrences[1]["id"].as_str().unwrap();
    p.apply(&p.caregiver, "decline", second).await;
    assert_eq!(p.status(second).await, "DECLINED");
    assert_eq!(
        p.status(occurrences[2]["id"].as_str().unwrap()).await,
        "PENDING"
    );

    // The stranger sees nothing of it.
    assert_eq!(
        p.app
            .code(&p.stranger, BOOKING, json!({ "id": created["id"] }))
            .await,
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn a_daily_series_runs_until_its_end_date() {
    let p = parties().await;
    let (starts, ends) = p.app.clock_after_hours(24);
    let first: DateTime<Utc> = starts.parse().unwrap();
    let until = first + Duration::days(4) + Duration::hours(1);
    let created = p
        .created(
            json!({ "caregiverId": p.caregiver.id, "startsAt": starts, "endsAt": ends,
                "recurrence": { "frequency": "DAILY", "until": until.to_rfc3339() } }),
        )
        .await;
    assert_eq!(
        created["series"]["occurrences"].as_array().unwrap().len(),
        5
    );

    for (recurrence, field) in [
        (
            json!({ "frequency": "DAILY", "count": 3, "until": until.to_rfc3339() }),
            "recurrence",
        ),
        (json!({ "frequency": "DAILY" }), "recurrence"),
        (
            json!({ "frequency": "DAILY", "count": 0 }),
            "recurrence.count",
        ),
        (
            json!({ "frequency": "WEEKLY", "count": 105 }),
            "recurrence.count",
        ),
        (
            json!({ "frequency": "DAILY", "until": (first + Duration::days(400)).to_rfc3339() }),
            "recurrence.until",
        ),
        (
            json!({ "frequency": "DAILY", "until": (first - Duration::days(1)).to_rfc3339() }),
            "recurrence.until",
        ),
    ] {
        let response = p
            .create(
                &p.recipient,
                json!({ "caregiverId": p.caregiver.id, "startsAt": starts,
                    "endsAt": ends, "recurrence": recurrence }),
            )
            .await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{recurrence}");
        assert_eq!(
            response["errors"][0]["extensions"]["field"], field,
            "{recurrence}"
        );
    }
    let listed = p.app.ok(&p.recipient, BOOKINGS, json!({})).await;
    assert_eq!(
        nodes(&listed["bookings"]).len(),
        5,
        "failed series left nothing behind"
    );
}

#[tokio::test]
async fn a_weekly_series_keeps_local_time_across_daylight_saving() {
    let app = TestApp::spawn().await;
    let recipient = app
        .register_in("CARE_RECIPIENT", "Paula", "Europe/Lisbon")
        .await;
    let caregiver = app.register("CAREGIVER", "Rui").await;
    // Lisbon moves from UTC+0 to UTC+1 on the last Sunday of March.
    let year = {
        use caregraph::clock::Clock;
        use chrono::Datelike;
        app.clock.now().year() + 1
    };
    let first = Utc.with_ymd_and_hms(year, 3, 20, 10, 0, 0).unwrap();
    let created = app
        .ok(
            &recipient,
            CREATE,
            json!({ "input": {
            "caregiverId": caregiver.id, "startsAt": first.to_rfc3339(),
            "endsAt": (first + Duration::hours(1)).to_rfc3339(),
            "recurrence": { "frequency": "WEEKLY", "count": 3 } } }),
        )
        .await;
    let hours: Vec<u32> = created["createBooking"]["series"]["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|occurrence| {
            use chrono::Timelike;
            occurrence["startsAt"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap()
                .hour()
        })
        .collect();
    assert_eq!(
        hours,
        vec![10, 10, 9],
        "10:00 in Lisbon is 09:00 UTC in summer time"
    );
}

#[tokio::test]
async fn bookings_page_completely_and_in_order() {
    let p = parties().await;
    let (starts, ends) = p.app.clock_after_hours(24);
    p.created(
        json!({ "caregiverId": p.caregiver.id, "startsAt": starts, "endsAt": ends,
            "recurrence": { "frequency": "DAILY", "count": 25 } }),
    )
    .await;
    let pages = p.app.pages(&p.caregiver, BOOKINGS, "bookings", 10).await;
    let starts_seen: Vec<DateTime<Utc>> = pages
        .iter()
        .flatten()
        .map(|node| node["startsAt"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(pages.len(), 3);
    assert_eq!(starts_seen.len(), 25);
    assert!(
        starts_seen.windows(2).all(|pair| pair[0] < pair[1]),
        "ordered by start, no repeats"
    );
}

#[tokio::test]
async fn a_stranger_can_neither_see_nor_change_a_booking() {
    let p = parties().await;
    let id = p.book(24).await;
    let response = p
        .app
        .graphql(Some(&p.stranger.token), BOOKING, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&response), "NOT_FOUND");
    let missing = p
        .app
        .graphql(
            Some(&p.stranger.token),
            BOOKING,
            json!({ "id": uuid::Uuid::now_v7() }),
        )
        .await;
    assert_eq!(
        missing["errors"][0]["message"], response["errors"][0]["message"],
        "indistinguishable from a missing one"
    );
    let listed = p.app.ok(&p.stranger, BOOKINGS, json!({})).await;
    assert!(nodes(&listed["bookings"]).is_empty(), "{listed}");
    for verb in VERBS {
        assert_eq!(
            p.refusal(&p.stranger, verb, &id).await,
            "NOT_FOUND",
            "{verb}"
        );
    }
    assert_eq!(p.status(&id).await, "PENDING");
}

#[tokio::test]
async fn query_depth_and_complexity_are_limited() {
    let p = parties().await;
    let deep = "{ bookings { edges { node { series { occurrences { series { occurrences { series {
        occurrences { series { occurrences { series { occurrences { id } } } } } } } } } } } } } }";
    let response = p
        .app
        .graphql(Some(&p.recipient.token), deep, json!({}))
        .await;
    assert_eq!(error_code(&response), "QUERY_TOO_DEEP", "{response}");
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 12"),
        "{response}"
    );
}
