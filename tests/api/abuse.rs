//! Abuse controls on sign-in: rate limits per account and per client address on `login` and
//! `register`, each telling the client when to retry; tokens used before their time.

use std::time::Duration;

use caregraph::config::{Config, RateConfig};
use serde_json::{Value, json};

use crate::auth::sign;
use crate::helpers::{TEST_JWT_SECRET, TestApp, data, error_code, test_config};

const LOGIN: &str = "mutation($email: String!, $password: String!) { login(input: {email: $email, password: $password}) { token } }";
const REGISTER: &str = "mutation($email: String!) { register(input: {email: $email, password: \"correct horse\", displayName: \"Abe\", role: CARE_RECIPIENT}) { token } }";
const PASSWORD: &str = "correct horse";

/// Small quotas, so a test reaches every limit in a few requests; client addresses come from
/// `X-Forwarded-For`, so one test can speak from several.
async fn limited_config(
    per_account: u32,
    per_address: u32,
    registrations_per_address: u32,
) -> Config {
    let minute = Duration::from_secs(60);
    let mut config = test_config().await;
    config.sign_in.per_account = RateConfig {
        burst: per_account,
        period: minute,
    };
    config.sign_in.per_address = RateConfig {
        burst: per_address,
        period: minute,
    };
    config.sign_in.registrations_per_address = RateConfig {
        burst: registrations_per_address,
        period: minute,
    };
    config.sign_in.client_ip_header = Some("X-Forwarded-For".to_owned());
    config
}

/// POSTs one operation as a client behind a proxy that appended `client` to X-Forwarded-For
/// (after an entry the client wrote itself, which must not count).
async fn from(app: &TestApp, client: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(format!("http://{}/graphql", app.addr))
        .header("X-Forwarded-For", format!("203.0.113.66, {client}"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("JSON response")
}

async fn login(app: &TestApp, client: &str, email: &str, password: &str) -> Value {
    let variables = json!({ "email": email, "password": password });
    from(app, client, LOGIN, variables).await
}

async fn register(app: &TestApp, client: &str, email: &str) -> Value {
    from(app, client, REGISTER, json!({ "email": email })).await
}

/// Asserts `RATE_LIMITED` and returns `retryAfterSeconds`, which must be within `(0, max]`.
fn retry_after(response: &Value, max: u64) -> u64 {
    assert_eq!(error_code(response), "RATE_LIMITED", "{response}");
    let seconds = response["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("retryAfterSeconds is a whole number: {response}"));
    assert!((1..=max).contains(&seconds), "{seconds} s: {response}");
    seconds
}

#[tokio::test]
async fn wrong_passwords_on_one_account_are_limited_and_others_are_not() {
    let app = TestApp::spawn_with(limited_config(3, 100, 100).await).await;
    data(register(&app, "10.0.0.1", "guessed@example.com").await);
    data(register(&app, "10.0.0.1", "bystander@example.com").await);
    // Registering counted once against each account; two guesses are left.
    for guess in ["guess one", "guess two"] {
        let response = login(&app, "10.0.0.2", "guessed@example.com", guess).await;
        assert_eq!(error_code(&response), "UNAUTHENTICATED", "{response}");
    }
    let refused = login(&app, "10.0.0.3", " Guessed@Example.com ", "guess three").await;
    let wait = retry_after(&refused, 60);
    // While limited, even the right password is refused: it would tell a guesser they won.
    let right = login(&app, "10.0.0.4", "guessed@example.com", PASSWORD).await;
    retry_after(&right, 60);
    data(login(&app, "10.0.0.2", "bystander@example.com", PASSWORD).await);

    app.clock.advance(chrono::Duration::seconds(wait as i64));
    data(login(&app, "10.0.0.4", "guessed@example.com", PASSWORD).await);
}

#[tokio::test]
async fn one_address_is_limited_across_accounts_and_other_addresses_are_not() {
    let app = TestApp::spawn_with(limited_config(100, 4, 100).await).await;
    data(register(&app, "10.0.1.1", "spray@example.com").await);
    for n in 0..4 {
        let email = format!("nobody-{n}@example.com");
        let response = login(&app, "10.0.1.2", &email, "wrong horse").await;
        assert_eq!(error_code(&response), "UNAUTHENTICATED", "{response}");
    }
    let refused = login(&app, "10.0.1.2", "spray@example.com", PASSWORD).await;
    let wait = retry_after(&refused, 60);
    data(login(&app, "10.0.1.3", "spray@example.com", PASSWORD).await);

    app.clock.advance(chrono::Duration::seconds(wait as i64));
    data(login(&app, "10.0.1.2", "spray@example.com", PASSWORD).await);
}

#[tokio::test]
async fn registrations_from_one_address_are_limited() {
    let app = TestApp::spawn_with(limited_config(100, 100, 2).await).await;
    for n in 0..2 {
        data(register(&app, "10.0.2.1", &format!("first-{n}@example.com")).await);
    }
    let refused = register(&app, "10.0.2.1", "third@example.com").await;
    let wait = retry_after(&refused, 60);
    data(register(&app, "10.0.2.2", "elsewhere@example.com").await);

    app.clock.advance(chrono::Duration::seconds(wait as i64));
    data(register(&app, "10.0.2.1", "third@example.com").await);
}

#[tokio::test]
async fn without_a_configured_header_the_peer_address_counts() {
    let mut config = limited_config(100, 2, 100).await;
    config.sign_in.client_ip_header = None;
    let app = TestApp::spawn_with(config).await;
    // Each request claims another address; all come from 127.0.0.1, which is what counts.
    for client in ["10.0.3.1", "10.0.3.2"] {
        let response = login(&app, client, "x@example.com", "wrong horse").await;
        assert_eq!(error_code(&response), "UNAUTHENTICATED", "{response}");
    }
    retry_after(
        &login(&app, "10.0.3.3", "x@example.com", "wrong horse").await,
        60,
    );
}

#[tokio::test]
async fn tokens_used_before_their_time_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Early").await;
    let now = app.clock_now();
    let claims = |iat: i64, nbf: Option<i64>| {
        let mut claims = json!({ "sub": user.id, "iat": iat, "exp": now + 3600, "iss": "caregraph", "aud": "caregraph" });
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(nbf);
        }
        sign(&claims, TEST_JWT_SECRET)
    };
    let me = "{ me { id } }";
    for (what, token, reason) in [
        ("nbf ahead", claims(now, Some(now + 600)), "not valid yet"),
        ("iat ahead", claims(now + 600, None), "issued in the future"),
    ] {
        let response = app.graphql(Some(&token), me, json!({})).await;
        assert_eq!(
            error_code(&response),
            "UNAUTHENTICATED",
            "{what}: {response}"
        );
        let message = response["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(reason), "{what}: {message}");
    }
    // A past nbf, and an issuer's clock a few seconds ahead, are fine.
    for token in [claims(now, Some(now - 10)), claims(now + 5, Some(now + 5))] {
        data(app.graphql(Some(&token), me, json!({})).await);
    }
    // The refused token becomes valid once its time has come.
    let early = claims(now, Some(now + 600));
    app.clock.advance(chrono::Duration::seconds(600));
    data(app.graphql(Some(&early), me, json!({})).await);
}

#[tokio::test]
async fn limits_that_cannot_work_refuse_to_start() {
    for (name, value) in [
        ("LOGIN_ACCOUNT_BURST", "0"),
        ("REGISTER_ADDRESS_PERIOD_MS", "0"),
    ] {
        let config = Config::from_lookup(|var| (var == name).then(|| value.to_owned()));
        assert!(config.is_err(), "{name}={value} must be refused");
    }
    let mut config = test_config().await;
    config.sign_in.client_ip_header = Some("not a header".to_owned());
    assert!(
        caregraph::startup::Application::build(config)
            .await
            .is_err(),
        "an invalid CLIENT_IP_HEADER must be refused"
    );
}
