//! The configuration: secrets kept out of logs, and the environment's rules (blank is
//! unset, values are trimmed, a refused value names its variable).

use std::collections::BTreeMap;

use caregraph::config::{Config, DEV_JWT_SECRET};

#[test]
fn debug_output_never_shows_a_secret() {
    let secrets = BTreeMap::from([
        ("JWT_SECRET", "jwt-secret-value-of-at-least-32-bytes"),
        ("SUPABASE_JWT_SECRET", "supabase-secret-value"),
        ("TWILIO_AUTH_TOKEN", "twilio-auth-token-value"),
        ("TWILIO_API_KEY_SECRET", "twilio-api-key-secret-value"),
        ("VIDEO_DEV_SECRET", "video-dev-secret-value"),
        (
            "DATABASE_URL",
            "postgres://caregraph:database-password@db/caregraph",
        ),
        ("TWILIO_ACCOUNT_SID", "ACtest"),
        ("TWILIO_API_KEY_SID", "SKtest"),
    ]);
    let config = Config::from_lookup(|name| secrets.get(name).map(|value| (*value).to_owned()))
        .expect("valid config");
    let debug = format!("{config:?}");
    for (name, value) in &secrets {
        if name.ends_with("_SID") {
            continue;
        }
        assert!(!debug.contains(value), "{name} leaks into Debug: {debug}");
    }
    assert!(!debug.contains("database-password"));
    assert!(debug.contains("[redacted]"));
    assert_eq!(format!("{}", config.auth.jwt_secret), "[redacted]");
    // Redacted, not lost: each is still there for the code that uses it.
    let twilio = config.video.twilio.as_ref().expect("Twilio is configured");
    assert_eq!(twilio.auth_token.expose(), secrets["TWILIO_AUTH_TOKEN"]);
    assert_eq!(
        twilio.api_key_secret.expose(),
        secrets["TWILIO_API_KEY_SECRET"]
    );
    assert_eq!(config.auth.jwt_secret.expose(), secrets["JWT_SECRET"]);
    assert_eq!(config.database_url.expose(), secrets["DATABASE_URL"]);
}

#[test]
fn blank_variables_are_unset_and_values_are_trimmed() {
    let defaults = Config::from_lookup(|_| None).expect("the defaults are valid");
    assert_eq!(defaults.auth.jwt_secret.expose(), DEV_JWT_SECRET);
    let blank = Config::from_lookup(|name| {
        ["EVENT_BUS_CAPACITY", "JWT_SECRET", "CORS_ALLOWED_ORIGINS"]
            .contains(&name)
            .then(|| "  ".to_owned())
    })
    .expect("blank is unset");
    assert_eq!(blank.bus_capacity, defaults.bus_capacity);
    assert_eq!(blank.auth.jwt_secret.expose(), DEV_JWT_SECRET);
    assert_eq!(blank.http.cors_allowed_origins, None);
    let padded =
        Config::from_lookup(|name| (name == "EVENT_BUS_CAPACITY").then(|| " 7 ".to_owned()))
            .expect("surrounding blanks are ignored");
    assert_eq!(padded.bus_capacity, 7);
}

#[test]
fn a_refused_value_names_its_variable() {
    for (name, value) in [
        ("EVENT_BUS_CAPACITY", "many"),
        ("CAREGRAPH_ENV", "staging"),
        ("GRAPHQL_COST_PER_SECOND", "0"),
        ("WS_KEEPALIVE_MS", "0"),
        ("REMINDER_OFFSETS_MINUTES", "60,-5"),
    ] {
        let err = Config::from_lookup(|var| (var == name).then(|| value.to_owned()))
            .expect_err("refused");
        assert!(err.to_string().contains(name), "{name}={value}: {err}");
    }
}
