//! The `caregraph` command: serve (default), migrate, export the schema, mint a dev token,
//! print the configuration reference.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use caregraph::{
    config::{self, Config, LogFormat, Settings},
    db,
    startup::Application,
    users::UserService,
};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
use uuid::Uuid;

// `long_about = None`: otherwise `--help` would describe the command with the doc comment of
// the flattened `Settings`.
#[derive(Parser)]
#[command(
    version,
    about = "A realtime GraphQL backend for care marketplaces",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the GraphQL API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Write the GraphQL schema (SDL) to a file.
    ExportSchema {
        #[arg(long, default_value = "schema.graphql")]
        out: PathBuf,
    },
    /// Mint a token for an existing user, for local use with GraphiQL or curl.
    Token {
        /// The user's email or id.
        #[arg(long)]
        user: String,
    },
    /// Print the configuration reference (docs/configuration.md) in Markdown.
    #[command(hide = true)]
    ConfigReference,
}

#[tokio::main]
async fn main() -> ExitCode {
    return_large_allocations_to_the_system();
    let matches = Settings::configure(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    let config = Config::from(cli.settings);
    let filter = match tracing_subscriber::EnvFilter::try_new(&config.log_filter) {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!("caregraph: RUST_LOG is not valid: {err}");
            return ExitCode::FAILURE;
        }
    };
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("caregraph: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Serve => {
            raise_fd_limit();
            let app = Application::build(config).await?;
            tracing::info!(
                "caregraph listening: GraphiQL at http://{0}/graphql, graphql-ws at ws://{0}/graphql",
                app.local_addr()?
            );
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let db = db::connect(config.database_url.expose(), &config.database).await?;
            Migrator::up(&db, None).await?;
            println!("migrations applied");
        }
        Command::ExportSchema { out } => {
            std::fs::write(&out, caregraph::graphql::sdl())?;
            println!("wrote {}", out.display());
        }
        Command::Token { user } => {
            let config = Config {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                ..config
            };
            let app = Application::build(config).await?;
            let services = app.services();
            let state = &services.state;
            let found = match Uuid::parse_str(&user) {
                Ok(id) => UserService::find(&state.db, id).await?,
                Err(_) => UserService::find_by_email(&state.db, &user).await?,
            }
            .ok_or_else(|| format!("no user {user}"))?;
            let (token, expires_at) = services.auth.tokens.issue(found.id, state.clock.now())?;
            eprintln!(
                "token for {} ({}), valid until {expires_at}",
                found.email, found.id
            );
            println!("{token}");
        }
        Command::ConfigReference => print!("{}", config::reference_markdown()),
    }
    Ok(())
}

/// Every websocket is a file descriptor: lift the soft limit to the hard one, so a default
/// soft limit of 1024 does not cap the connections an instance holds.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if !raised {
        tracing::warn!("could not raise the open-file limit; connections may be capped");
    }
}

/// Password hashing allocates 19 MiB at a time. glibc's adaptive mmap threshold would serve
/// those from the heap after the first one and keep them: a burst of sign-ups then holds
/// hundreds of megabytes for good. A fixed threshold maps them and gives them back on free.
fn return_large_allocations_to_the_system() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; it is called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
