//! The GraphQL face of bookings: queries, lifecycle mutations and `bookingUpdated`.

use std::sync::Arc;

use async_graphql::{
    Context, InputObject, Object, OutputType, Subscription,
    connection::Connection,
    dataloader::DataLoader,
    futures_util::{future::BoxFuture, stream::BoxStream},
};
use chrono::{DateTime, Utc};
use entity::{
    booking, booking_series,
    enums::{BookingStatus, Frequency},
};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{
    loaders::{BookingLoader, SeriesLoader},
    recurrence::{MAX_OCCURRENCES, Recurrence},
    service::{BookingAction, BookingService, NewBooking},
};
use crate::{
    bus::{
        Event, Topic,
        parking::resume_or,
        state::{Change, ChangedSince, Start, StateSource, live_state},
    },
    error::AppError,
    paging::page_cost,
    state::{AppState, viewer_page, viewer_row, write_as_viewer},
    users::User,
    viewer::viewer,
};

/// An appointment between a care recipient and a caregiver.
#[derive(Clone)]
pub struct Booking(Arc<booking::Model>);

impl From<booking::Model> for Booking {
    fn from(model: booking::Model) -> Self {
        Booking(Arc::new(model))
    }
}

impl Booking {
    /// A booking the viewer is a party to, through the request's batched loader.
    pub async fn load(ctx: &Context<'_>, id: Uuid) -> Result<Booking, AppError> {
        let viewer = viewer(ctx)?;
        ctx.data_unchecked::<DataLoader<BookingLoader>>()
            .load_one(id)
            .await?
            .filter(|booking| booking.is_party(viewer.id))
            .map(Booking::from)
            .ok_or(AppError::NotFound("booking"))
    }
}

/// A booking's chat, as the chat domain presents it. Chat sits above bookings (it opens one
/// chat per booking), so bookings names what `Booking.chatSession` needs and chat provides it
/// by implementing this for [`BookingChat`]: the field exists without bookings importing chat.
pub trait ChatOfBooking {
    /// The GraphQL type of a chat.
    type Session: OutputType;

    /// The chat of the booking `booking_id` if it is open and the viewer is one of its
    /// members; `None` otherwise.
    fn of_booking(
        ctx: &Context<'_>,
        booking_id: Uuid,
    ) -> impl Future<Output = Result<Option<Self::Session>, AppError>> + Send;
}

/// The one implementor of [`ChatOfBooking`], provided by the chat domain.
pub struct BookingChat;

#[Object]
impl Booking {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    async fn care_recipient(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        User::load(ctx, self.0.care_recipient_id).await
    }

    async fn caregiver(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        User::load(ctx, self.0.caregiver_id).await
    }

    async fn starts_at(&self) -> DateTime<Utc> {
        self.0.starts_at
    }

    async fn ends_at(&self) -> DateTime<Utc> {
        self.0.ends_at
    }

    async fn notes(&self) -> &str {
        &self.0.notes
    }

    async fn status(&self) -> BookingStatus {
        self.0.status
    }

    /// The recurring series this booking belongs to, if any.
    async fn series(&self, ctx: &Context<'_>) -> Result<Option<BookingSeries>, AppError> {
        let Some(series_id) = self.0.series_id else {
            return Ok(None);
        };
        let viewer = viewer(ctx)?;
        let series = ctx
            .data_unchecked::<DataLoader<SeriesLoader>>()
            .load_one(series_id)
            .await?
            .filter(|(series, _)| {
                series.care_recipient_id == viewer.id || series.caregiver_id == viewer.id
            })
            .ok_or(AppError::NotFound("booking series"))?;
        Ok(Some(BookingSeries {
            series: series.0,
            occurrences: series.1,
        }))
    }

    /// The parties' chat about this booking; null until either of them enabled it.
    async fn chat_session(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<<BookingChat as ChatOfBooking>::Session>, AppError> {
        BookingChat::of_booking(ctx, self.0.id).await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A recurring booking: the rule and every occurrence, each a booking of its own.
pub struct BookingSeries {
    series: booking_series::Model,
    occurrences: Arc<[booking::Model]>,
}

#[Object]
impl BookingSeries {
    async fn id(&self) -> Uuid {
        self.series.id
    }

    async fn frequency(&self) -> Frequency {
        self.series.frequency
    }

    async fn count(&self) -> Option<i32> {
        self.series.count
    }

    async fn until(&self) -> Option<DateTime<Utc>> {
        self.series.until
    }

    /// Every occurrence, by start time; counted at a series' longest for the query's cost.
    #[graphql(complexity = "MAX_OCCURRENCES * child_complexity")]
    async fn occurrences(&self) -> Vec<Booking> {
        self.occurrences
            .iter()
            .cloned()
            .map(Booking::from)
            .collect()
    }
}

/// Repeats the booking every day or week; give exactly one of `count` and `until`.
#[derive(InputObject)]
pub struct RecurrenceInput {
    frequency: Frequency,
    /// How many occurrences, the first included (1 to 104).
    count: Option<i32>,
    /// No occurrence starts after this instant.
    until: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct CreateBookingInput {
    caregiver_id: Uuid,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    notes: Option<String>,
    /// Makes this the first occurrence of a series, at the same local time in the
    /// care recipient's timezone.
    recurrence: Option<RecurrenceInput>,
}

#[derive(Default)]
pub struct BookingQuery;

#[Object]
impl BookingQuery {
    /// The viewer's bookings, as care recipient or caregiver, by start time.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn bookings(
        &self,
        ctx: &Context<'_>,
        status: Option<BookingStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Booking>, AppError> {
        viewer_page::<booking::Entity, _>(ctx, status, first, after, Booking::from).await
    }

    /// One booking the viewer is a party to.
    async fn booking(&self, ctx: &Context<'_>, id: Uuid) -> Result<Booking, AppError> {
        viewer_row::<booking::Entity>(ctx, id)
            .await
            .map(Booking::from)
    }
}

#[derive(Default)]
pub struct BookingMutation;

#[Object]
impl BookingMutation {
    /// A care recipient asks a caregiver for a time range (or a recurring series); it starts pending.
    async fn create_booking(
        &self,
        ctx: &Context<'_>,
        input: CreateBookingInput,
    ) -> Result<Booking, AppError> {
        let new_booking = NewBooking {
            caregiver_id: input.caregiver_id,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            notes: input.notes,
            recurrence: input.recurrence.map(|rule| Recurrence {
                frequency: rule.frequency,
                count: rule.count,
                until: rule.until,
            }),
        };
        let booking = write_as_viewer(ctx, async |write, viewer| {
            BookingService::create(write, viewer, new_booking).await
        })
        .await?;
        Ok(booking.into())
    }

    /// The caregiver accepts a pending booking.
    async fn accept_booking(&self, ctx: &Context<'_>, id: Uuid) -> Result<Booking, AppError> {
        apply(ctx, id, BookingAction::Accept).await
    }

    /// The caregiver declines a pending booking.
    async fn decline_booking(&self, ctx: &Context<'_>, id: Uuid) -> Result<Booking, AppError> {
        apply(ctx, id, BookingAction::Decline).await
    }

    /// Either party cancels a pending or accepted booking.
    async fn cancel_booking(&self, ctx: &Context<'_>, id: Uuid) -> Result<Booking, AppError> {
        apply(ctx, id, BookingAction::Cancel).await
    }

    /// Either party marks an accepted booking completed after it ended.
    async fn complete_booking(&self, ctx: &Context<'_>, id: Uuid) -> Result<Booking, AppError> {
        apply(ctx, id, BookingAction::Complete).await
    }
}

/// Runs one lifecycle action in one write: commit, then publish.
async fn apply(ctx: &Context<'_>, id: Uuid, action: BookingAction) -> Result<Booking, AppError> {
    let viewer = viewer(ctx)?;
    let state = AppState::of(ctx);
    let offsets = &state.reminders.offsets_minutes;
    let booking = state
        .writer
        .run(async |write| BookingService::apply(write, viewer, id, action, offsets).await)
        .await?;
    Ok(booking.into())
}

/// The viewer's bookings, on either side, as a stream of state.
///
/// An event passes on the booking it carries when the viewer is a party to it. After missed
/// events, a resync yields the viewer's bookings changed since the last one delivered (less
/// a margin for transactions that committed late), oldest change first: a booking may come
/// twice, but its latest status never goes missing.
struct ViewerBookings {
    db: DatabaseConnection,
    viewer_id: Uuid,
    since: ChangedSince,
}

impl StateSource for ViewerBookings {
    type Item = Booking;

    fn change(&mut self, event: &Event) -> Change<Booking> {
        match event {
            Event::BookingChanged(booking) if booking.is_party(self.viewer_id) => {
                self.since.saw(booking.updated_at);
                Change::Items(vec![Booking(booking.clone())])
            }
            _ => Change::none(),
        }
    }

    fn current(&mut self) -> BoxFuture<'_, Result<Vec<Booking>, AppError>> {
        Box::pin(async move {
            let changed =
                BookingService::changed_since(&self.db, self.viewer_id, self.since.since()).await?;
            for booking in &changed {
                self.since.saw(booking.updated_at);
            }
            Ok(changed.into_iter().map(Booking::from).collect())
        })
    }
}

#[derive(Default)]
pub struct BookingSubscription;

#[Subscription]
impl BookingSubscription {
    /// Every booking of the viewer's, on either side, as it is created or changes status.
    ///
    /// A subscriber that falls behind the bus re-reads what changed since the last booking it
    /// was sent (with a margin for transactions that committed late), so it may see a booking
    /// twice but never misses its latest state. If that re-read fails, the stream ends with
    /// the error (`SERVICE_UNAVAILABLE`, retryable, or `INTERNAL`): resubscribe, then query
    /// `bookings` for what changed meanwhile.
    async fn booking_updated(
        &self,
        ctx: &Context<'_>,
    ) -> Result<BoxStream<'static, Result<Booking, AppError>>, AppError> {
        resume_or(ctx, || async {
            let viewer_id = viewer(ctx)?.id;
            let state = AppState::of(ctx);
            let deliveries = state.bus.subscribe(Topic::User(viewer_id));
            let source = ViewerBookings {
                db: state.db.clone(),
                viewer_id,
                since: ChangedSince::new(state.clock.now()),
            };
            Ok(live_state(source, deliveries, Start::Changes))
        })
        .await
    }
}
