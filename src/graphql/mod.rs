//! The schema, assembled from the domains, with its limits, error codes, persisted queries
//! and the read-only rule of `GET` requests.

mod limits;
mod operations;
mod parsed_queries;
mod persisted_queries;
mod selected;

use async_graphql::{MergedObject, MergedSubscription, Schema, dataloader::DataLoader};
use limits::QueryLimits;
pub use limits::read_only::ReadOnlyRequest;
use operations::OperationMetrics;
use persisted_queries::PersistedQueries;

use crate::{
    auth::AuthMutation,
    bookings::{BookingLoader, BookingMutation, BookingQuery, BookingSubscription, SeriesLoader},
    chat::{ChatMutation, ChatQuery, ChatSubscription, SessionByBookingLoader},
    config::GraphqlConfig,
    delivery::{DeliveryMutation, DeliveryQuery},
    error::ErrorCodes,
    notifications::{NotificationMutation, NotificationQuery, NotificationSubscription},
    services::Services,
    users::{UserLoader, UserMutation, UserQuery},
    video::{VideoMutation, VideoQuery, VideoSubscription},
};

#[derive(MergedObject, Default)]
pub struct Query(
    UserQuery,
    BookingQuery,
    ChatQuery,
    VideoQuery,
    NotificationQuery,
    DeliveryQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    AuthMutation,
    UserMutation,
    BookingMutation,
    ChatMutation,
    VideoMutation,
    NotificationMutation,
    DeliveryMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    BookingSubscription,
    ChatSubscription,
    VideoSubscription,
    NotificationSubscription,
);

/// The executable schema of caregraph.
pub type CaregraphSchema = Schema<Query, Mutation, Subscription>;

/// How deeply input values and fragments may nest, checked by the parser.
const MAX_RECURSIVE_DEPTH: usize = 32;

/// The schema serving requests, with the shared services (each part as context data of its
/// own type) and the loaders that batch each page's per-row look-ups into one query.
pub fn build(services: &Services, config: &GraphqlConfig) -> CaregraphSchema {
    let state = services.state.clone();
    let users = DataLoader::new(UserLoader(state.db.clone()), tokio::spawn);
    let usage = state.usage.clone();
    let bookings = DataLoader::new(BookingLoader(state.db.clone()), tokio::spawn);
    let series = DataLoader::new(SeriesLoader(state.db.clone()), tokio::spawn);
    let chats = DataLoader::new(SessionByBookingLoader(state.db.clone()), tokio::spawn);
    let mut schema = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .data(state)
    .data(services.auth.clone())
    .data(services.sends.clone())
    .data(services.typing.clone())
    .data(services.video.clone())
    .data(services.delivery.clone())
    .data(users)
    .data(bookings)
    .data(series)
    .data(chats)
    .extension(OperationMetrics)
    .extension(ErrorCodes)
    .extension(PersistedQueries::default())
    .extension(QueryLimits::new(config, usage))
    .limit_recursive_depth(MAX_RECURSIVE_DEPTH);
    if !config.introspection {
        schema = schema.disable_introspection().disable_suggestions();
    }
    schema.finish()
}

/// The SDL of the schema, as `caregraph export-schema` writes it to `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .finish()
    .sdl()
}
