//! The configuration: secrets kept out of logs.

use std::collections::BTreeMap;

use caregraph::config::Config;

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
