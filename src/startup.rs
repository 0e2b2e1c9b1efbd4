//! Building and running the application: the one place where the parts are wired together.

use std::{net::SocketAddr, sync::Arc};

use migration::{Migrator, MigratorTrait};
use tokio::net::TcpListener;

use crate::{
    auth::{Auth, Authenticator, SignInLimits, TokenService},
    bus::{BusTasks, EventBus, InProcessBus, PostgresBus},
    chat::{SendQueue, TypingGate},
    clock::{Clock, SystemClock},
    config::{Config, ConfigError, Environment, EventBusChoice, JobConfig},
    db::{self, Writer},
    delivery::{self, Delivery, provider::SetupError, unsubscribe::UnsubscribeLinks},
    graphql,
    http::{self, HttpState},
    jobs,
    rate_limit::UsageLimits,
    services::Services,
    shutdown::Shutdown,
    state::AppState,
    video::{DevProvider, TwilioProvider, Video, VideoProvider, VideoSettings},
};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("push or email provider {0}")]
    Provider(#[from] SetupError),
    #[error("binding the listener: {0}")]
    Bind(#[from] std::io::Error),
    #[error("video provider client: {0}")]
    Video(#[from] reqwest::Error),
    #[error("event bus: cannot listen: {0}")]
    Bus(#[from] sea_orm::sqlx::Error),
}

/// The bus `config` selects for instance `instance`, and its background work.
async fn event_bus(
    config: &Config,
    db: &sea_orm::DatabaseConnection,
    instance: uuid::Uuid,
) -> Result<(Arc<dyn EventBus>, BusTasks), StartupError> {
    Ok(match config.event_bus()? {
        EventBusChoice::InProcess => (
            Arc::new(InProcessBus::new(config.bus_capacity)),
            BusTasks::none(),
        ),
        EventBusChoice::Postgres { listen_url } => {
            let (bus, tasks) = PostgresBus::start(
                db.clone(),
                listen_url.expose(),
                instance,
                config.bus_capacity,
            )
            .await?;
            tracing::info!("events reach other instances with PostgreSQL's LISTEN/NOTIFY");
            (bus, tasks)
        }
    })
}

/// Twilio when it is configured, the dev provider otherwise; `public_url` is where Twilio's
/// status callbacks go.
fn video(config: &Config, public_url: &str) -> Result<Video, StartupError> {
    let provider: Arc<dyn VideoProvider> = match &config.video.twilio {
        Some(twilio) => Arc::new(TwilioProvider::new(
            twilio.clone(),
            format!("{public_url}/webhooks/twilio/video"),
            config.video.twilio_timeout,
        )?),
        None => {
            tracing::info!("Twilio is not configured: video calls use the dev provider");
            Arc::new(DevProvider::new(
                config.video.dev_secret.expose().to_owned(),
            ))
        }
    };
    let seconds = |duration: std::time::Duration| {
        chrono::Duration::seconds(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 1000))
    };
    Ok(Video {
        provider,
        settings: VideoSettings {
            max_duration: seconds(config.video.max_duration),
            request_ttl: seconds(config.video.request_ttl),
            token_ttl: seconds(config.video.token_ttl),
            join_timeout: seconds(config.video.join_timeout),
        },
        provider_timeout: config.video.twilio_timeout,
    })
}

/// A built application, bound to its port and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    services: Services,
    scheduler_interval: std::time::Duration,
    /// The job workers' concurrency, lease and poll interval.
    jobs: JobConfig,
    header_timeout: std::time::Duration,
    shutdown_grace: std::time::Duration,
    sockets: Arc<http::OpenSockets>,
    shutdown: Shutdown,
    /// The event bus's listening connection, run while the application serves.
    bus_tasks: BusTasks,
}

impl Application {
    /// Builds with the wall clock.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Connects, migrates, and binds (port 0 picks a free port); tests pass their own clock.
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        config.check()?;
        let listener = TcpListener::bind(config.addr).await?;
        let public_url = match &config.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", listener.local_addr()?),
        };
        let db = db::connect(config.database_url.expose(), &config.database).await?;
        Migrator::up(&db, None).await?;
        let instance = uuid::Uuid::now_v7();
        tracing::info!(%instance, "this instance's id");
        crate::telemetry::instance(instance);
        let (bus, bus_tasks) = event_bus(&config, &db, instance).await?;
        let delivery = Arc::new(Delivery {
            providers: delivery::providers(&config.delivery)?,
            backoff: Delivery::BACKOFF,
            allow_loopback_endpoints: config.environment == Environment::Development,
            unsubscribe: UnsubscribeLinks::new(&config.auth.jwt_secret, &public_url),
        });
        delivery.providers.log_channels();
        let tokens = Arc::new(TokenService::new(&config.auth));
        let write_queue = db::WriteQueue::for_url(
            config.database_url.expose(),
            config.database.acquire_timeout,
        );
        let job_wake = db::JobWake::default();
        let writer = Writer::new(
            db.clone(),
            write_queue.clone(),
            clock.clone(),
            bus.clone(),
            job_wake.clone(),
            db::Outbound {
                push: delivery.providers.any_push(),
                email: delivery.providers.email.is_some(),
                digest_delay: config.delivery.digest_delay,
            },
        );
        let sends =
            SendQueue::start(writer.on(
                db::writer_connection(config.database_url.expose(), &config.database, &db).await?,
            ));
        let auth = Auth {
            authenticator: Authenticator::new(
                tokens.clone(),
                db.clone(),
                clock.clone(),
                writer.clone(),
                config.auth.known_users_capacity,
            ),
            sign_in: Arc::new(SignInLimits::new(&config.sign_in, clock.clone())?),
            tokens,
        };
        let services = Services {
            state: AppState {
                usage: Arc::new(UsageLimits::new(&config.usage, clock.clone())),
                db,
                bus,
                clock,
                reminders: Arc::new(config.reminders.clone()),
                write_queue,
                writer,
            },
            auth,
            sends,
            typing: Arc::new(TypingGate::new(config.typing_ttl)),
            video: Arc::new(video(&config, &public_url)?),
            delivery,
            job_wake,
        };
        let schema = graphql::build(&services, &config.graphql);
        let sockets = Arc::new(http::OpenSockets::default());
        let shutdown = Shutdown::default();
        let router = http::router(HttpState {
            services: services.clone(),
            schema,
            http: Arc::new(config.http.clone()),
            websocket: Arc::new(config.websocket.clone()),
            graphiql: config.graphql.graphiql,
            sockets: sockets.clone(),
            shutdown: shutdown.clone(),
            metrics: config
                .metrics_enabled
                .then(crate::telemetry::recorder)
                .flatten(),
        });
        Ok(Self {
            listener,
            router,
            services,
            scheduler_interval: config.reminders.scheduler_interval,
            jobs: config.delivery.jobs.clone(),
            header_timeout: config.http.header_timeout,
            shutdown_grace: config.shutdown_grace,
            sockets,
            shutdown,
            bus_tasks,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared services, for commands that act without HTTP (e.g. minting a token).
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until SIGTERM or SIGINT (ctrl-c), then stops gracefully (see [`Self::run_until`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(stop_signal()).await
    }

    /// Serves, with the job workers, the scheduler, the event bus's listener and SQLite's
    /// checkpointer beside it, until `stop` completes (tests pass their own). Then: no new
    /// connections, every websocket closed with 1001, requests in flight, the jobs under way
    /// and the scheduler's current pass given up to `SHUTDOWN_GRACE_MS` to finish; then
    /// everything stops.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> std::io::Result<()> {
        let grace = self.shutdown_grace;
        let shutdown = self.shutdown;
        let server = http::serve(
            self.listener,
            self.router,
            self.header_timeout,
            http::Stop {
                requested: stop,
                shutdown: shutdown.clone(),
                sockets: self.sockets,
                grace,
            },
        );
        let Services {
            state,
            video,
            delivery,
            job_wake,
            ..
        } = self.services;
        let checkpoints = db::checkpoint::run(state.db.clone(), state.write_queue.clone());
        let workers = jobs::workers::run(
            state.clone(),
            delivery,
            video.clone(),
            self.jobs,
            job_wake,
            &shutdown,
        );
        let scheduler = async {
            tokio::select! {
                ((), ()) = async {
                    tokio::join!(jobs::run(state, &video, self.scheduler_interval, &shutdown), workers)
                } => {}
                () = async { shutdown.stopping().await; tokio::time::sleep(grace).await } => {
                    tracing::warn!("stopping the scheduler in the middle of a pass after {grace:?}");
                }
            }
        };
        tokio::select! {
            ((), ()) = async { tokio::join!(server, scheduler) } => {}
            () = checkpoints => {}
            () = self.bus_tasks.run() => {}
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGTERM (what orchestrators send) or SIGINT (ctrl-c).
async fn stop_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only ctrl-c stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
