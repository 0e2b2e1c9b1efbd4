//! Writing messages in batches: every send that reaches the writer together is checked and
//! stored in one transaction of eight statements, however many there are (on SQLite,
//! where a statement is no round trip, each insert goes in up to nine runs; on PostgreSQL
//! each list is one array parameter, and the two updates join the batch's arrays instead of
//! testing every row against a `CASE` arm per send: `batch_shape`). The first statement
//! locks the sessions and reads, beside each, what the batch needs to know about it
//! (`locked`). A round trip to the database, not the work inside it, is what a send costs.
//!
//! This file runs a batch and writes its statements; what each send becomes is decided in
//! `plan`, and its recipient is told by `notices`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{chat_member, chat_session, message};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, Statement,
    Value,
    sea_query::{CaseStatement, Expr, ExprTrait},
};
use uuid::Uuid;

use super::{
    locked::LockedSessions,
    notices::notify_recipients,
    plan::{Draft, Plan, Planner, SendRequest, stored_messages, validate},
    receipts::{Receipts, SessionReceipts, forward_only, members},
};
use crate::{
    bus::Event,
    db::Write,
    db::batch_shape::{BatchShape, array},
    error::AppError,
};

/// A stored message with both members' receipts after it, for its delivery status.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The message as stored (for a retry, the original).
    pub message: message::Model,
    /// Both members' receipts once the batch is written, by user.
    pub receipts: SessionReceipts,
}

/// The batch writer: the one way a message is stored, so that every message, a person's or
/// a system line, takes its session's next seq under the session's lock and moves its
/// sender's receipt in the same statements. Group commit (`send_queue`) hands it whole
/// batches; `ChatService::post_system` appends one line.
pub struct MessageBatch;

impl MessageBatch {
    /// Stores each request's message with its session's next seq, under the sessions' row
    /// locks, and notifies each recipient. A retry with a used `clientMessageId` returns the
    /// original and changes nothing. One request's refusal does not affect the others; only a
    /// database fault fails the batch.
    pub async fn send(
        write: &Write,
        requests: &[SendRequest],
    ) -> Result<Vec<Result<Sent, AppError>>, AppError> {
        let checked: Vec<Result<(String, String), AppError>> = requests
            .iter()
            .map(|request| validate(&request.message))
            .collect();
        let wanted: BTreeSet<Uuid> = requests
            .iter()
            .zip(&checked)
            .filter(|(_, checked)| checked.is_ok())
            .map(|(request, _)| request.message.session_id)
            .collect();
        let LockedSessions {
            sessions,
            closed,
            receipts,
            names,
        } = LockedSessions::lock(write, &wanted).await?;
        let stored = stored_messages(write, requests, &checked).await?;

        let mut planner = Planner::new(&sessions, &closed, &stored);
        let plans: Vec<Plan> = requests
            .iter()
            .zip(checked)
            .map(|(request, checked)| planner.plan(request, checked))
            .collect();
        let drafts = planner.into_drafts();

        let (appended, receipts) = Self::append(write, &sessions, receipts, drafts).await?;
        notify_recipients(write, &sessions, &names, &appended).await?;
        let sent = |message: &message::Model| Sent {
            receipts: receipts
                .get(&message.chat_session_id)
                .cloned()
                .unwrap_or_default(),
            message: message.clone(),
        };
        Ok(plans
            .into_iter()
            .map(|plan| match plan {
                Plan::Refused(err) => Err(err),
                Plan::Stored(original) => Ok(sent(&original)),
                Plan::SameAs(index) | Plan::New(index) => appended
                    .get(index)
                    .map(sent)
                    .ok_or_else(|| AppError::Internal("a draft was not stored".to_owned())),
            })
            .collect())
    }

    /// Stores drafts in their sessions, whose row locks the caller holds: each takes its
    /// session's next seq, in order. Writing a message means having read everything before
    /// it, so each sender's horizons move up to their last message. Takes the members'
    /// `receipts` as read under the locks, and returns the messages, in the drafts' order,
    /// and those receipts after them.
    pub async fn append(
        write: &Write,
        sessions: &HashMap<Uuid, chat_session::Model>,
        mut receipts: Receipts,
        drafts: Vec<Draft>,
    ) -> Result<(Vec<message::Model>, Receipts), AppError> {
        let now = write.now();
        if drafts.is_empty() {
            return Ok((Vec::new(), receipts));
        }
        let mut last_seq: BTreeMap<Uuid, i64> = BTreeMap::new();
        let mut messages = Vec::with_capacity(drafts.len());
        let mut parties = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let session = sessions
                .get(&draft.session_id)
                .ok_or(AppError::NotFound("chat session"))?;
            let seq = last_seq.entry(session.id).or_insert(session.last_seq);
            *seq += 1;
            parties.push(members(session));
            messages.push(message::Model {
                id: Uuid::now_v7(),
                chat_session_id: session.id,
                seq: *seq,
                sender_id: draft.sender_id,
                body: draft.body,
                client_message_id: draft.client_message_id,
                created_at: now,
                edited_at: None,
                deleted_at: None,
                kind: draft.kind,
            });
        }
        set_last_seqs(write, &last_seq, now).await?;
        BatchShape::of(write)
            .insert(write, &messages, |message| {
                message.clone().into_active_model()
            })
            .await?;

        let mut written: BTreeMap<(Uuid, Uuid), (i64, i64)> = BTreeMap::new();
        for message in &messages {
            let entry = written
                .entry((message.chat_session_id, message.sender_id))
                .or_insert((0, 0));
            *entry = (message.seq, entry.1 + 1);
        }
        advance_senders(write, &written).await?;
        for (message, members) in messages.iter().zip(parties) {
            write.publish(Event::MessageAdded {
                message: Arc::new(message.clone()),
                members,
            });
        }
        for ((session_id, sender_id), (seq, count)) in written {
            let (Some(session), Some(receipt)) = (
                sessions.get(&session_id),
                receipts
                    .get_mut(&session_id)
                    .and_then(|session_receipts| session_receipts.get_mut(&sender_id)),
            ) else {
                continue;
            };
            // Nothing else can move past `seq` before this commits, so the new horizons are
            // known without reading back. Only the other member's messages make news.
            let read_others = seq - receipt.last_read_seq > count;
            receipt.last_read_seq = Ord::max(receipt.last_read_seq, seq);
            receipt.last_delivered_seq = Ord::max(receipt.last_delivered_seq, seq);
            if read_others {
                write.publish(Event::ReceiptsMoved {
                    receipt: receipt.clone(),
                    members: members(session),
                    read_moved: true,
                });
            }
        }
        Ok((messages, receipts))
    }
}

/// Sets each session's last seq, and its last activity to `now`.
async fn set_last_seqs(
    write: &Write,
    last_seq: &BTreeMap<Uuid, i64>,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let shape = BatchShape::of(write);
    if shape == BatchShape::Arrays {
        let (ids, seqs) = last_seq
            .iter()
            .map(|(id, seq)| (Value::from(*id), Value::from(*seq)))
            .unzip();
        if let (Some(ids), Some(seqs)) = (array(ids), array(seqs)) {
            write.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                r#"UPDATE "chat_sessions" SET "last_seq" = "v"."last_seq", "last_activity_at" = $3
                   FROM unnest($1, $2) AS "v"("id", "last_seq")
                   WHERE "chat_sessions"."id" = "v"."id""#,
                [ids, seqs, now.into()],
            ))
            .await?;
        }
        return Ok(());
    }
    let last_seqs = shape.list(last_seq.iter().map(|(id, seq)| (*id, *seq)));
    let new_last_seq = cases(
        last_seqs
            .iter()
            .map(|(session_id, seq)| (Expr::col(chat_session::Column::Id).eq(*session_id), *seq)),
        chat_session::Column::LastSeq,
    );
    chat_session::Entity::update_many()
        .col_expr(chat_session::Column::LastSeq, new_last_seq.into())
        .col_expr(chat_session::Column::LastActivityAt, Expr::value(now))
        .filter(chat_session::Column::Id.is_in(last_seqs.iter().map(|(id, _)| *id)))
        .exec(write)
        .await?;
    Ok(())
}

/// Moves each sender's read and delivered horizons up to the last seq they wrote, with one
/// update that never moves a horizon back (a concurrent mark may already be further).
async fn advance_senders(
    write: &Write,
    written: &BTreeMap<(Uuid, Uuid), (i64, i64)>,
) -> Result<(), AppError> {
    let shape = BatchShape::of(write);
    if shape == BatchShape::Arrays {
        let (sessions, (senders, seqs)): (Vec<Value>, (Vec<Value>, Vec<Value>)) = written
            .iter()
            .map(|((session_id, sender_id), (seq, _))| {
                (
                    Value::from(*session_id),
                    (Value::from(*sender_id), Value::from(*seq)),
                )
            })
            .unzip();
        if let (Some(sessions), Some(senders), Some(seqs)) =
            (array(sessions), array(senders), array(seqs))
        {
            write
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    r#"UPDATE "chat_members"
                   SET "last_read_seq" = GREATEST("last_read_seq", "v"."seq"),
                       "last_delivered_seq" = GREATEST("last_delivered_seq", "v"."seq")
                   FROM unnest($1, $2, $3) AS "v"("session_id", "user_id", "seq")
                   WHERE "chat_members"."session_id" = "v"."session_id"
                     AND "chat_members"."user_id" = "v"."user_id""#,
                    [sessions, senders, seqs],
                ))
                .await?;
        }
        return Ok(());
    }
    let written = shape.list(written.iter().map(|(sender, (seq, _))| (*sender, *seq)));
    let target = || {
        cases(
            written.iter().map(|((session_id, sender_id), seq)| {
                let is_sender = Expr::col(chat_member::Column::SessionId)
                    .eq(*session_id)
                    .and(Expr::col(chat_member::Column::UserId).eq(*sender_id));
                (is_sender, *seq)
            }),
            chat_member::Column::LastReadSeq,
        )
    };
    let senders = shape.pair_in(
        (chat_member::Column::SessionId, chat_member::Column::UserId),
        written.iter().map(|(sender, _)| *sender),
    );
    chat_member::Entity::update_many()
        .col_expr(
            chat_member::Column::LastReadSeq,
            forward_only(chat_member::Column::LastReadSeq, target()),
        )
        .col_expr(
            chat_member::Column::LastDeliveredSeq,
            forward_only(chat_member::Column::LastDeliveredSeq, target()),
        )
        .filter(senders)
        .exec(write)
        .await?;
    Ok(())
}

/// `CASE WHEN condition THEN value … ELSE column END`: one value per matching row.
fn cases(
    arms: impl Iterator<Item = (Expr, i64)>,
    otherwise: impl sea_orm::sea_query::IntoColumnRef,
) -> CaseStatement {
    arms.fold(CaseStatement::new(), |case, (condition, value)| {
        case.case(condition, value)
    })
    .finally(Expr::col(otherwise))
}
