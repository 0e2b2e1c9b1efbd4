//! The schema, assembled from the domains, with its limits and error codes.

pub mod pagination;
mod parsed_queries;

use async_graphql::{MergedObject, MergedSubscription, Schema, dataloader::DataLoader};
use parsed_queries::ParsedQueries;

use crate::{
    bookings::{BookingMutation, BookingQuery, BookingSubscription},
    chat::{ChatMutation, ChatQuery, ChatSubscription},
    config::GraphqlConfig,
    error::ErrorCodes,
    notifications::{NotificationMutation, NotificationQuery, NotificationSubscription},
    state::AppState,
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
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    UserMutation,
    BookingMutation,
    ChatMutation,
    VideoMutation,
    NotificationMutation,
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

/// How many `@include`/`@skip`-style directives one field may carry.
const MAX_DIRECTIVES: usize = 8;
/// How deeply input values and fragments may nest.
const MAX_RECURSIVE_DEPTH: usize = 32;

/// The schema serving requests, with the shared state and a batching user loader.
pub fn build(state: AppState, config: &GraphqlConfig) -> CaregraphSchema {
    let users = DataLoader::new(UserLoader(state.db.clone()), tokio::spawn);
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .data(state)
    .data(users)
    .extension(ErrorCodes)
    .extension(ParsedQueries::default())
    .limit_depth(config.max_depth)
    .limit_complexity(config.max_complexity)
    .limit_recursive_depth(MAX_RECURSIVE_DEPTH)
    .limit_directives(MAX_DIRECTIVES)
    .finish()
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
