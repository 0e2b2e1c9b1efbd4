//! The in-app inbox: who is notified of what, preferences, paging, live counts on several
//! sockets, gap-free resume under concurrent writes, privacy, and booking reminders.

use std::time::Duration;

use chrono::{Datelike, TimeZone, Utc};
use serde_json::{Value, json};

use crate::helpers::{INBOX, Protocol, TestApp, TestUser, error_code, nodes, test_config};

impl TestApp {
    /// Waits until `user` has `count` notifications of `kind`, then checks no more come.
    pub(crate) async fn expect_exactly(&self, user: &TestUser, kind: &str, count: usize) {
        let query = json!({ "types": [kind], "first": 100 });
        let mut seen = 0;
        for _ in 0..100 {
            let page = self.ok(user, INBOX, query.clone()).await;
            seen = nodes(&page["notifications"]).len();
            if seen >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let page = self.ok(user, INBOX, query).await;
        let settled = nodes(&page["notifications"]).len();
        assert_eq!((seen, settled), (count, count), "{kind} notifications");
    }
}

#[tokio::test]
async fn booking_events_notify_exactly_the_expected_people_in_their_timezones() {
    let app = TestApp::spawn().await;
    let recipient = app
        .register_in("CARE_RECIPIENT", "Maria Santos", "Europe/Lisbon")
        .await;
    let caregiver = app
        .register_in("CAREGIVER", "Nuno Costa", "America/New_York")
        .await;
    let stranger = app.register("CARE_RECIPIENT", "Olga").await;
    let year = {
        use caregraph::clock::Clock;
        app.clock.now().year() + 1
    };
    // A Tuesday in early March: no daylight-saving change in either zone yet.
    let day = (1..8)
        .map(|d| Utc.with_ymd_and_hms(year, 3, d, 10, 0, 0).unwrap())
        .find(|d| d.weekday() == chrono::Weekday::Tue)
        .unwrap();
    let label = day.format("%a %-d %b").to_string();
    let id = app
        .book_at(
            &recipient,
            &caregiver,
            &day.to_rfc3339(),
            &(day + chrono::Duration::hours(2)).to_rfc3339(),
        )
        .await;

    let inbox = app.inbox(&caregiver).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["type"], "BOOKING_CREATED");
    assert_eq!(inbox[0]["title"], "New booking request");
    assert_eq!(
        inbox[0]["body"],
        format!("Maria Santos asked to book you for {label}, 05:00\u{2013}07:00")
    );
    assert_eq!(inbox[0]["data"]["bookingId"], id.as_str());
    assert_eq!(inbox[0]["isRead"], false);
    assert!(
        app.inbox(&recipient).await.is_empty(),
        "the actor is not told about their own request"
    );

    app.act(&caregiver, "acceptBooking", &id).await;
    let to_recipient = &app.inbox(&recipient).await[0];
    assert_eq!(to_recipient["type"], "BOOKING_ACCEPTED");
    assert_eq!(
        to_recipient["body"],
        format!("Nuno Costa accepted your booking for {label}, 10:00\u{2013}12:00")
    );
    let to_caregiver = &app.inbox(&caregiver).await[0];
    assert_eq!(
        to_caregiver["body"],
        format!("You accepted the booking with Maria Santos for {label}, 05:00\u{2013}07:00")
    );

    app.act(&recipient, "cancelBooking", &id).await;
    assert_eq!(
        app.inbox_types(&recipient).await,
        ["BOOKING_ACCEPTED", "BOOKING_CANCELLED"]
    );
    assert_eq!(
        app.inbox_types(&caregiver).await,
        ["BOOKING_CREATED", "BOOKING_ACCEPTED", "BOOKING_CANCELLED"]
    );

    let declined = app.book(&recipient, &caregiver, 48).await;
    app.act(&caregiver, "declineBooking", &declined).await;
    let completed = app.book(&recipient, &caregiver, 72).await;
    app.act(&caregiver, "acceptBooking", &completed).await;
    app.clock.advance(chrono::Duration::hours(75));
    app.act(&recipient, "completeBooking", &completed).await;
    assert_eq!(
        app.inbox_types(&recipient).await,
        [
            "BOOKING_ACCEPTED",
            "BOOKING_CANCELLED",
            "BOOKING_DECLINED",
            "BOOKING_ACCEPTED",
            "BOOKING_COMPLETED"
        ]
    );
    let caregiver_types = app.inbox_types(&caregiver).await;
    assert_eq!(caregiver_types.len(), 8, "{caregiver_types:?}");
    assert!(app.inbox(&stranger).await.is_empty());
}

#[tokio::test]
async fn a_recurring_series_notifies_the_caregiver_once() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Paula").await;
    let caregiver = app.register("CAREGIVER", "Rui").await;
    let created = app
        .book_series(
            &recipient,
            &caregiver,
            24,
            json!({ "frequency": "WEEKLY", "count": 6 }),
        )
        .await;
    let inbox = app.inbox(&caregiver).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["type"], "BOOKING_SERIES_CREATED");
    assert!(
        inbox[0]["body"]
            .as_str()
            .unwrap()
            .contains("weekly, 6 times"),
        "{}",
        inbox[0]["body"]
    );
    assert_eq!(
        inbox[0]["data"]["bookingId"],
        created["series"]["occurrences"][0]["id"]
    );
}

#[tokio::test]
async fn profile_and_availability_changes_notify_the_right_people() {
    let app = TestApp::spawn().await;
    let caregiver = app.register("CAREGIVER", "Sofia").await;
    let upcoming = app.register("CARE_RECIPIENT", "Tomas").await;
    let past_only = app.register("CARE_RECIPIENT", "Ursula").await;
    let cancelled_only = app.register("CARE_RECIPIENT", "Vasco").await;
    let stranger = app.register("CARE_RECIPIENT", "Wanda").await;

    app.ok(
        &caregiver,
        r#"mutation { updateProfile(input: {displayName: "Sofia Reis", bio: "Hi"}) { id } }"#,
        json!({}),
    )
    .await;
    let inbox = app.inbox(&caregiver).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["type"], "PROFILE_UPDATED");
    assert_eq!(
        inbox[0]["body"],
        "Your display name, bio changed. Others now see you as Sofia Reis."
    );

    let past = app.book(&past_only, &caregiver, 2).await;
    app.act(&caregiver, "acceptBooking", &past).await;
    let cancelled = app.book(&cancelled_only, &caregiver, 30).await;
    app.act(&cancelled_only, "cancelBooking", &cancelled).await;
    app.clock.advance(chrono::Duration::hours(5));
    app.book(&upcoming, &caregiver, 40).await;

    app.ok(
        &caregiver,
        "mutation { setAvailability(availability: BUSY) { id } }",
        json!({}),
    )
    .await;
    app.ok(
        &caregiver,
        "mutation { setAvailability(availability: BUSY) { id } }",
        json!({}),
    )
    .await;
    let notified = app.inbox(&upcoming).await;
    assert_eq!(
        notified.len(),
        1,
        "one notice for one change, none for a repeat"
    );
    assert_eq!(notified[0]["type"], "CAREGIVER_AVAILABILITY_CHANGED");
    assert_eq!(notified[0]["title"], "Sofia Reis is now busy");
    assert_eq!(notified[0]["data"]["caregiverId"], caregiver.id.as_str());
    for user in [&past_only, &cancelled_only, &stranger] {
        let types = app.inbox_types(user).await;
        assert!(
            !types.contains(&"CAREGIVER_AVAILABILITY_CHANGED".to_owned()),
            "{types:?}"
        );
    }
}

#[tokio::test]
async fn preferences_switch_types_off_per_channel_but_not_the_protected_ones() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Xana").await;
    let caregiver = app.register("CAREGIVER", "Yuri").await;
    let query = "{ notificationPreferences { type channel enabled isDefault locked } }";
    let all = app.ok(&caregiver, query, json!({})).await["notificationPreferences"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 17 * 3, "every type x channel");
    let find = |all: &[Value], kind: &str, channel: &str| {
        all.iter()
            .find(|p| p["type"] == kind && p["channel"] == channel)
            .unwrap()
            .clone()
    };
    assert_eq!(find(&all, "BOOKING_CREATED", "IN_APP")["enabled"], true);
    assert_eq!(find(&all, "PROFILE_UPDATED", "EMAIL")["enabled"], false);
    assert_eq!(
        find(&all, "BOOKING_STARTING_SOON", "IN_APP")["locked"],
        true
    );

    let update = "mutation($input: UpdateNotificationPreferencesInput!) {
        updateNotificationPreferences(input: $input) { type channel enabled isDefault } }";
    let updated = app
        .ok(
            &caregiver,
            update,
            json!({ "input": { "preferences": [
            { "type": "BOOKING_CREATED", "channel": "IN_APP", "enabled": false },
            { "type": "BOOKING_CREATED", "channel": "EMAIL", "enabled": false } ] } }),
        )
        .await;
    let updated = updated["updateNotificationPreferences"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        find(&updated, "BOOKING_CREATED", "IN_APP")["enabled"],
        false
    );
    assert_eq!(
        find(&updated, "BOOKING_CREATED", "IN_APP")["isDefault"],
        false
    );
    assert_eq!(
        find(&updated, "BOOKING_CREATED", "PUSH")["enabled"],
        true,
        "other channels untouched"
    );

    let id = app.book(&recipient, &caregiver, 24).await;
    assert!(
        app.inbox(&caregiver).await.is_empty(),
        "switched off in-app"
    );
    app.act(&caregiver, "acceptBooking", &id).await;
    assert_eq!(
        app.inbox_types(&caregiver).await,
        ["BOOKING_ACCEPTED"],
        "other types still arrive"
    );

    let refused = app
        .graphql(
            Some(&caregiver.token),
            update,
            json!({ "input": { "preferences": [
            { "type": "BOOKING_ACCEPTED", "channel": "IN_APP", "enabled": false },
            { "type": "BOOKING_STARTING_SOON", "channel": "IN_APP", "enabled": false } ] } }),
        )
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("BOOKING_STARTING_SOON")
    );
    let after = app.ok(&caregiver, query, json!({})).await["notificationPreferences"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        find(&after, "BOOKING_ACCEPTED", "IN_APP")["enabled"],
        true,
        "all or nothing"
    );
    assert_eq!(
        find(&after, "BOOKING_STARTING_SOON", "IN_APP")["enabled"],
        true
    );
}

/// Creates `count` notifications for `user` (each profile edit notifies its author).
async fn make_notifications(app: &TestApp, user: &TestUser, count: usize) {
    for index in 0..count {
        app.ok(
            user,
            "mutation($name: String!) { updateProfile(input: {displayName: $name}) { id } }",
            json!({ "name": format!("Name {index}") }),
        )
        .await;
    }
}

#[tokio::test]
async fn paging_over_250_notifications_is_complete_and_newest_first() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Zelia").await;
    make_notifications(&app, &user, 250).await;
    let bodies: Vec<String> = app
        .pages(&user, INBOX, "notifications", 100)
        .await
        .iter()
        .flatten()
        .map(|notification| notification["body"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..250)
        .rev()
        .map(|index| format!("Your display name changed. Others now see you as Name {index}."))
        .collect();
    assert_eq!(bodies, expected, "all 250, newest first, none twice");
    let types = app
        .ok(&user, INBOX, json!({ "types": ["BOOKING_CREATED"] }))
        .await;
    assert!(nodes(&types["notifications"]).is_empty(), "{types}");
    let unread = app
        .ok(&user, INBOX, json!({ "unreadOnly": true, "first": 5 }))
        .await;
    assert_eq!(nodes(&unread["notifications"]).len(), 5);
}

#[tokio::test]
async fn read_unread_all_and_delete_drive_the_count_on_every_socket() {
    for protocol in Protocol::BOTH {
        let app = TestApp::spawn().await;
        let user = app.register("CARE_RECIPIENT", "Alma").await;
        let stranger = app.register("CARE_RECIPIENT", "Bruno").await;
        let count = "subscription { unreadNotificationCount }";
        let mut sockets = Vec::new();
        for _ in 0..2 {
            let mut ws = app.ws_as(protocol, &user).await;
            ws.subscribe("c", count, json!({})).await;
            assert_eq!(ws.next_data("c").await["unreadNotificationCount"], 0);
            sockets.push(ws);
        }
        let mut outsider = app.ws_as(protocol, &stranger).await;
        outsider.subscribe("c", count, json!({})).await;
        assert_eq!(outsider.next_data("c").await["unreadNotificationCount"], 0);

        async fn expect(sockets: &mut [crate::helpers::WsClient], value: i64) {
            for ws in sockets.iter_mut() {
                assert_eq!(ws.next_data("c").await["unreadNotificationCount"], value);
            }
        }
        for expected in 1..=3 {
            make_notifications(&app, &user, 1).await;
            expect(&mut sockets, expected).await;
        }
        let ids: Vec<String> = app
            .inbox(&user)
            .await
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect();
        let read = app
            .ok(
                &user,
                "mutation($id: UUID!) { markNotificationRead(id: $id) { isRead readAt } }",
                json!({ "id": ids[0] }),
            )
            .await;
        assert_eq!(read["markNotificationRead"]["isRead"], true);
        assert!(read["markNotificationRead"]["readAt"].is_string());
        expect(&mut sockets, 2).await;
        // Reading it again changes nothing, so nothing is sent.
        app.ok(
            &user,
            "mutation($id: UUID!) { markNotificationRead(id: $id) { id } }",
            json!({ "id": ids[0] }),
        )
        .await;
        app.ok(
            &user,
            "mutation($id: UUID!) { markNotificationUnread(id: $id) { isRead } }",
            json!({ "id": ids[0] }),
        )
        .await;
        expect(&mut sockets, 3).await;
        let all = app
            .ok(&user, "mutation { markAllNotificationsRead }", json!({}))
            .await;
        assert_eq!(all["markAllNotificationsRead"], 3);
        expect(&mut sockets, 0).await;
        make_notifications(&app, &user, 1).await;
        expect(&mut sockets, 1).await;
        let newest = app.inbox(&user).await[0]["id"].as_str().unwrap().to_owned();
        let deleted = app
            .ok(
                &user,
                "mutation($id: UUID!) { deleteNotification(id: $id) }",
                json!({ "id": newest }),
            )
            .await;
        assert_eq!(deleted["deleteNotification"], newest.as_str());
        expect(&mut sockets, 0).await;
        assert_eq!(
            app.ok(&user, "{ unreadNotificationCount }", json!({}))
                .await["unreadNotificationCount"],
            0
        );
        assert_eq!(app.inbox(&user).await.len(), 3);

        // Nobody else may touch these, nor hear of them.
        for mutation in [
            "markNotificationRead",
            "markNotificationUnread",
            "deleteNotification",
        ] {
            let selection = if mutation == "deleteNotification" {
                ""
            } else {
                "{ id }"
            };
            let response = app
                .graphql(
                    Some(&stranger.token),
                    &format!("mutation($id: UUID!) {{ {mutation}(id: $id) {selection} }}"),
                    json!({ "id": ids[1] }),
                )
                .await;
            assert_eq!(error_code(&response), "NOT_FOUND", "{mutation}");
        }
        outsider.expect_silence(Duration::from_millis(200)).await;
        for ws in sockets.iter_mut() {
            ws.expect_silence(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn notification_added_resumes_without_gaps_or_repeats_under_concurrent_writes() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Celia").await;
    let stranger = app.register("CARE_RECIPIENT", "Duarte").await;
    make_notifications(&app, &user, 1).await;
    let start_cursor = app.inbox(&user).await[0]["cursor"].clone();
    let added =
        "subscription($after: String) { notificationAdded(after: $after) { id cursor body } }";

    let mut outsider = app.ws_as(Protocol::TransportWs, &stranger).await;
    outsider.subscribe("n", added, json!({})).await;

    const TOTAL: usize = 60;
    let writer = {
        let addr = app.addr;
        let token = user.token.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut workers = Vec::new();
            for worker in 0..4 {
                let client = client.clone();
                let token = token.clone();
                workers.push(tokio::spawn(async move {
                    for index in 0..TOTAL / 4 {
                        let body = json!({ "query": "mutation($n: String!) { updateProfile(input: {displayName: $n}) { id } }",
                            "variables": { "n": format!("W{worker} {index}") } });
                        let response = client.post(format!("http://{addr}/graphql")).bearer_auth(&token).json(&body).send().await.unwrap();
                        assert!(response.status().is_success());
                    }
                }));
            }
            for worker in workers {
                worker.await.unwrap();
            }
        })
    };

    let mut received: Vec<Value> = Vec::new();
    let mut first = app.ws_as(Protocol::TransportWs, &user).await;
    first
        .subscribe("n", added, json!({ "after": start_cursor }))
        .await;
    for _ in 0..10 {
        received.push(first.next_data("n").await["notificationAdded"].clone());
    }
    drop(first);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let resume_from = received.last().unwrap()["cursor"].clone();
    let mut second = app.ws_as(Protocol::LegacyWs, &user).await;
    second
        .subscribe("n", added, json!({ "after": resume_from }))
        .await;
    while received.len() < TOTAL {
        received.push(second.next_data("n").await["notificationAdded"].clone());
    }
    writer.await.unwrap();
    second.expect_silence(Duration::from_millis(200)).await;

    let mut stored: Vec<Value> = app.inbox(&user).await;
    stored.reverse();
    let stored_ids: Vec<&Value> = stored.iter().skip(1).map(|n| &n["id"]).collect();
    let received_ids: Vec<&Value> = received.iter().map(|n| &n["id"]).collect();
    assert_eq!(
        received_ids, stored_ids,
        "every notification once, in stored order"
    );
    outsider.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn reminders_fire_once_per_offset_and_not_for_cancelled_bookings() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Eva").await;
    let caregiver = app.register("CAREGIVER", "Fabio").await;
    let kept = app.book(&recipient, &caregiver, 48).await;
    app.act(&caregiver, "acceptBooking", &kept).await;
    let cancelled = app.book(&recipient, &caregiver, 52).await;
    app.act(&caregiver, "acceptBooking", &cancelled).await;
    let declined = app.book(&recipient, &caregiver, 30).await;
    app.act(&caregiver, "declineBooking", &declined).await;

    app.clock.advance(chrono::Duration::hours(23));
    app.expect_exactly(&recipient, "BOOKING_REMINDER", 0).await;
    app.act(&recipient, "cancelBooking", &cancelled).await;
    app.clock.advance(chrono::Duration::hours(2));
    for user in [&recipient, &caregiver] {
        app.expect_exactly(user, "BOOKING_REMINDER", 1).await;
        app.expect_exactly(user, "BOOKING_STARTING_SOON", 0).await;
    }
    let reminders = app
        .ok(&recipient, INBOX, json!({ "types": ["BOOKING_REMINDER"] }))
        .await;
    let reminder = nodes(&reminders["notifications"])[0];
    assert_eq!(reminder["data"]["bookingId"], kept.as_str());
    assert!(
        reminder["body"]
            .as_str()
            .unwrap()
            .contains("starts in 24 hours"),
        "{reminder}"
    );

    app.clock
        .advance(chrono::Duration::hours(22) + chrono::Duration::minutes(30));
    for user in [&recipient, &caregiver] {
        app.expect_exactly(user, "BOOKING_STARTING_SOON", 1).await;
        app.expect_exactly(user, "BOOKING_REMINDER", 1).await;
    }
    app.clock.advance(chrono::Duration::hours(10));
    app.expect_exactly(&recipient, "BOOKING_STARTING_SOON", 1)
        .await;
}

#[tokio::test]
async fn a_booking_accepted_inside_a_window_gets_only_the_reminders_ahead() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Gloria").await;
    let caregiver = app.register("CAREGIVER", "Hugo").await;
    let id = app.book(&recipient, &caregiver, 5).await;
    app.act(&caregiver, "acceptBooking", &id).await;
    app.clock
        .advance(chrono::Duration::hours(4) + chrono::Duration::minutes(5));
    app.expect_exactly(&recipient, "BOOKING_STARTING_SOON", 1)
        .await;
    app.expect_exactly(&recipient, "BOOKING_REMINDER", 0).await;
}

#[tokio::test]
async fn reminders_survive_restarts_and_two_instances_send_once() {
    let config = test_config().await;
    let first = TestApp::spawn_with(config.clone()).await;
    let clock = first.clock.clone();
    let recipient = first.register("CARE_RECIPIENT", "Ines").await;
    let caregiver = first.register("CAREGIVER", "Jorge").await;
    let id = first.book(&recipient, &caregiver, 30).await;
    first.act(&caregiver, "acceptBooking", &id).await;
    clock.advance(chrono::Duration::hours(7));
    first
        .expect_exactly(&recipient, "BOOKING_REMINDER", 1)
        .await;
    first.stop().await;

    // The server was down when the next reminder fell due; two instances come up at once.
    clock.advance(chrono::Duration::hours(22) + chrono::Duration::minutes(30));
    let second = TestApp::spawn_with_clock(config.clone(), clock.clone()).await;
    let third = TestApp::spawn_with_clock(config, clock.clone()).await;
    for user in [&recipient, &caregiver] {
        second
            .expect_exactly(user, "BOOKING_STARTING_SOON", 1)
            .await;
        third.expect_exactly(user, "BOOKING_REMINDER", 1).await;
    }
}

#[tokio::test]
async fn a_cursor_of_another_inbox_is_refused() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Rosa").await;
    let caregiver = app.register("CAREGIVER", "Samir").await;
    let booking = app.book(&recipient, &caregiver, 24).await;
    app.act(&caregiver, "acceptBooking", &booking).await;
    let theirs = app.inbox(&recipient).await[0]["cursor"].clone();
    let mine = app.inbox(&caregiver).await[0]["cursor"].clone();

    let paged = app
        .ok(&caregiver, INBOX, json!({ "first": 10, "after": mine }))
        .await;
    assert!(paged["notifications"]["edges"].is_array(), "{paged}");
    let refused = app
        .graphql(
            Some(&caregiver.token),
            INBOX,
            json!({ "first": 10, "after": theirs }),
        )
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    assert_eq!(refused["errors"][0]["extensions"]["field"], "after");
    let mut ws = app.ws_as(Protocol::TransportWs, &caregiver).await;
    ws.subscribe(
        "n",
        "subscription($after: String) { notificationAdded(after: $after) { id } }",
        json!({ "after": theirs }),
    )
    .await;
    let refused = ws.next_payload("n").await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
}
