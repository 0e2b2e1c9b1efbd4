//! The configuration: declared once, documented from the declarations, secrets kept out of
//! logs, and the environment's rules (blank is unset, values are trimmed).

use std::{collections::BTreeMap, path::Path, process::Command};

use caregraph::config::{Config, DEV_JWT_SECRET, reference_markdown, variables};

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

#[test]
fn the_reference_is_generated_from_the_declarations() {
    assert!(
        read("docs/configuration.md") == reference_markdown(),
        "docs/configuration.md differs from the declarations in src/config/settings.rs; \
         regenerate it with `cargo run -- config-reference > docs/configuration.md`"
    );
}

/// `--help`, of the command and of `serve`, lists every variable with its option and default.
#[test]
fn help_lists_every_variable_with_its_default() {
    for args in [&["--help"][..], &["serve", "--help"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_caregraph"))
            .args(args)
            .env_clear()
            .output()
            .expect("run caregraph --help");
        assert!(output.status.success(), "{args:?} failed");
        let help = String::from_utf8(output.stdout).expect("help is UTF-8");
        for variable in variables() {
            let option = format!("      {} <{}>\n", variable.option, variable.name);
            let (_, entry) = help
                .split_once(&option)
                .unwrap_or_else(|| panic!("{args:?} does not list {option}:\n{help}"));
            let entry = entry.split("\n\n").next().unwrap_or_default();
            assert!(
                entry.contains(&format!("[env: {}]", variable.name)),
                "{args:?}: {entry}"
            );
            match &variable.default {
                Some(default) => assert!(
                    entry.contains(&format!("[default: {default}]")),
                    "{args:?}: {entry}"
                ),
                None => assert!(!entry.contains("[default:"), "{args:?}: {entry}"),
            }
        }
    }
}

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

/// `EVENT_BUS_URL` picks the bus: PostgreSQL's by itself on PostgreSQL, this instance alone
/// on SQLite; a PostgreSQL bus on SQLite, or a scheme it does not know, refuses to start.
#[test]
fn the_event_bus_follows_the_database_unless_told_otherwise() {
    use caregraph::config::EventBusChoice;
    let with = |database: &str, bus: Option<&str>| {
        let (database, bus) = (database.to_owned(), bus.map(str::to_owned));
        Config::from_lookup(move |name| match name {
            "DATABASE_URL" => Some(database.clone()),
            "EVENT_BUS_URL" => bus.clone(),
            _ => None,
        })
        .expect("readable")
        .event_bus()
    };
    let postgres = "postgres://u@db:5432/care";
    assert!(matches!(
        with(postgres, None),
        Ok(EventBusChoice::Postgres { listen_url }) if listen_url.expose() == postgres
    ));
    assert!(matches!(
        with(postgres, Some("postgres://u@direct:5432/care")),
        Ok(EventBusChoice::Postgres { listen_url }) if listen_url.expose() == "postgres://u@direct:5432/care"
    ));
    assert!(matches!(
        with(postgres, Some("in-process")),
        Ok(EventBusChoice::InProcess)
    ));
    assert!(matches!(
        with("sqlite://x.sqlite", None),
        Ok(EventBusChoice::InProcess)
    ));
    for (database, bus) in [
        ("sqlite://x.sqlite", "postgres://u@db:5432/care"),
        (postgres, "redis://cache:6379"),
    ] {
        let refused = with(database, Some(bus)).expect_err("refused");
        assert!(refused.to_string().contains("EVENT_BUS_URL"), "{refused}");
        assert!(
            !refused.to_string().contains("u@db"),
            "no URL in the message: {refused}"
        );
    }
}

/// docs/limits.md explains why each limit has its default; the defaults it quotes are the
/// declared ones.
#[test]
fn the_limits_document_quotes_the_declared_defaults() {
    let declared: BTreeMap<String, Option<String>> = variables()
        .into_iter()
        .map(|variable| (variable.name, variable.default))
        .collect();
    let limits = read("docs/limits.md");
    let mut checked = 0;
    for row in limits.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let names = cells[1].split(", ").map(|name| name.trim_matches('`'));
        let defaults = cells[2].split(", ").map(|default| {
            let quoted = default.split(' ').next().unwrap_or_default();
            (quoted != "unset").then(|| quoted.trim_matches('`').to_owned())
        });
        for (name, default) in names.zip(defaults) {
            let declaration = declared
                .get(name)
                .unwrap_or_else(|| panic!("docs/limits.md names {name}, which is not declared"));
            assert_eq!(
                declaration, &default,
                "docs/limits.md: the default of {name}"
            );
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} limits found in docs/limits.md"
    );
}

/// `LOG_FORMAT=json` writes one JSON object per log line; any other name than text or json
/// is refused before anything runs.
#[test]
fn json_logs_are_one_object_per_line() {
    let database = std::env::temp_dir().join(format!(
        "caregraph-logs-{}.sqlite",
        uuid::Uuid::now_v7().simple()
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_caregraph"))
        .arg("migrate")
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", database.display()),
        )
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .output()
        .expect("run caregraph migrate");
    let _ = std::fs::remove_file(&database);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let logs: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("a log line is JSON"))
        .collect();
    assert!(!logs.is_empty(), "no log lines in {stdout}");
    for log in &logs {
        assert!(
            log["level"].is_string() && log["fields"].is_object(),
            "{log}"
        );
    }

    let refused = Command::new(env!("CARGO_BIN_EXE_caregraph"))
        .arg("config-reference")
        .env_clear()
        .env("LOG_FORMAT", "yaml")
        .output()
        .expect("run caregraph");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("LOG_FORMAT"), "{stderr}");
}

#[test]
fn a_provider_configured_in_part_refuses_to_start_naming_what_is_missing() {
    let config =
        Config::from_lookup(|name| (name == "APNS_KEY_ID").then(|| "ABC123DEFG".to_owned()))
            .expect("readable");
    let refused = config.check().expect_err("incomplete APNs");
    let message = refused.to_string();
    assert!(
        message.contains("APNS_KEY_FILE") && message.contains("APNS_TEAM_ID"),
        "{message}"
    );
    assert!(!message.contains("APNS_KEY_ID and"), "{message}");
    let smtp = Config::from_lookup(|name| {
        (name == "SMTP_URL").then(|| "smtps://mail.example.com".to_owned())
    })
    .expect("readable");
    assert!(
        smtp.check()
            .expect_err("no EMAIL_FROM")
            .to_string()
            .contains("EMAIL_FROM")
    );
}
