//! Callback requests as the admin API shows them: the open ones from the
//! callbacks task's book, the latest closed ones from the call records
//! store; and operators closing one (cancel, handled).

use crate::switch::Switch;
use chrono::{DateTime, Utc};
use permanence_callbacks::{AttemptResult, BookError, Request};
use permanence_http::{CallbackAction, CallbackRefused, CallbackView, CallbacksView};
use permanence_records::{CallbackResult, CallbackState, CallbackStatus};

/// The closed statuses `recent` lists.
const CLOSED: [CallbackStatus; 4] = [
    CallbackStatus::Completed,
    CallbackStatus::Failed,
    CallbackStatus::Cancelled,
    CallbackStatus::Handled,
];

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The number as `reveal` allows: in clear, or masked.
fn shown(number: String, reveal: bool) -> String {
    if reveal {
        number
    } else {
        permanence_numbers::mask(&number)
    }
}

/// A try's result with the store's (and the API's) name.
fn result_name(r: AttemptResult) -> &'static str {
    match r {
        AttemptResult::Answered => CallbackResult::Answered,
        AttemptResult::NoAnswer => CallbackResult::NoAnswer,
        AttemptResult::Busy => CallbackResult::Busy,
        AttemptResult::Failed => CallbackResult::Failed,
        AttemptResult::Refused => CallbackResult::Refused,
    }
    .as_str()
}

/// An open request of the book.
fn open_view(r: Request, now: DateTime<Utc>, reveal: bool) -> CallbackView {
    let agent = match &r.status {
        permanence_callbacks::Status::Offered { agent }
        | permanence_callbacks::Status::Dialling { agent } => Some(agent.clone()),
        _ => r.agent.clone(),
    };
    CallbackView {
        status: r.status.as_str().to_string(),
        practice: r.practice,
        number: shown(r.number, reveal),
        origin: r.origin.as_str().to_string(),
        requested_at: rfc3339(r.requested_at),
        joined_at: rfc3339(r.joined_at),
        deadline_at: rfc3339(r.deadline),
        seconds_to_deadline: (r.deadline - now).num_seconds(),
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at.map(rfc3339),
        last_result: r.last_result.map(|x| result_name(x).to_string()),
        agent,
        completed_at: None,
        key: r.key,
    }
}

/// A stored (closed) request.
fn stored_view(s: CallbackState, now: DateTime<Utc>, reveal: bool) -> CallbackView {
    CallbackView {
        seconds_to_deadline: (s.deadline_at - s.completed_at.unwrap_or(now)).num_seconds(),
        key: s.key,
        practice: s.practice_id,
        number: shown(s.number, reveal),
        origin: s.origin.as_str().to_string(),
        status: s.status.as_str().to_string(),
        requested_at: rfc3339(s.requested_at),
        joined_at: rfc3339(s.joined_at),
        deadline_at: rfc3339(s.deadline_at),
        attempts: s.attempts,
        next_attempt_at: s.next_attempt_at.map(rfc3339),
        last_result: s.last_result.map(|x| x.as_str().to_string()),
        agent: s.agent,
        completed_at: s.completed_at.map(rfc3339),
    }
}

/// Reads the store (after flushing what is queued for it) off the async
/// workers; `None` without a store or when it cannot be read (logged).
pub(crate) async fn read_store<T: Send + 'static>(
    switch: &Switch,
    read: impl FnOnce(&permanence_records::RecordReader) -> Result<T, permanence_records::RecordsError>
        + Send
        + 'static,
) -> Option<T> {
    let handle = switch.records.clone()?;
    let path = switch.config().records.path.clone();
    let result = tokio::task::spawn_blocking(move || {
        // What the callbacks task just wrote is on disk before it is read.
        let _ = handle.flush();
        permanence_records::RecordReader::open(&path).and_then(|r| read(&r))
    })
    .await;
    match result {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::warn!(event = "admin.callbacks_unreadable", error = %e, "callback requests not read from the records store");
            None
        }
        Err(e) => {
            tracing::warn!(event = "admin.callbacks_unreadable", error = %e, "callback requests not read from the records store");
            None
        }
    }
}

/// `GET /api/callbacks`.
pub(super) async fn list(switch: &Switch, practice: Option<&str>, reveal: bool) -> CallbacksView {
    // The book answers once its latest change is handed to the store, so
    // a request closed just before is in `recent` (the store is flushed
    // before it is read), not missing from both lists.
    let open = switch.callbacks.open().await;
    let now = switch.clock.now();
    let wanted = practice.map(str::to_owned);
    let recent = read_store(switch, move |r| {
        r.callbacks_list(
            wanted.as_deref(),
            &CLOSED,
            permanence_http::RECENT_CALLBACKS,
        )
    })
    .await
    .unwrap_or_default();
    CallbacksView {
        open: open
            .into_iter()
            .filter(|r| practice.is_none_or(|p| r.practice == p))
            .map(|r| open_view(r, now, reveal))
            .collect(),
        recent: recent
            .into_iter()
            .map(|s| stored_view(s, now, reveal))
            .collect(),
    }
}

/// `POST /api/callbacks/{key}/cancel|handled` (not audited here).
pub(crate) async fn close(
    switch: &Switch,
    by: &str,
    key: &str,
    action: CallbackAction,
) -> Result<(), CallbackRefused> {
    let handled_by = match action {
        CallbackAction::Cancel => None,
        CallbackAction::Handled => Some(by.to_string()),
    };
    match switch.callbacks.close(key, handled_by).await {
        Ok(()) => Ok(()),
        // Not open: closed already (in the store), or unknown.
        Err(e) if e == BookError::Unknown(key.to_owned()).to_string() => {
            let owned = key.to_owned();
            match read_store(switch, move |r| r.callback_by_key(&owned))
                .await
                .flatten()
            {
                Some(s) => Err(CallbackRefused::Conflict(format!(
                    "callback request {key:?} is already closed ({})",
                    s.status
                ))),
                None => Err(CallbackRefused::Unknown(e)),
            }
        }
        Err(e) => Err(CallbackRefused::Conflict(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use permanence_callbacks::{Origin, Policy, Status};

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 3, h, m, 0)
            .single()
            .unwrap_or_default()
    }

    fn request() -> Request {
        Request {
            key: "c1-cb".into(),
            practice: "tilleuls".into(),
            number: "+33612345678".into(),
            origin: Origin::Caller,
            requested_at: at(9, 0),
            joined_at: at(8, 58),
            priority: 0,
            triage: None,
            deadline: at(10, 0),
            attempts: 1,
            next_attempt_at: Some(at(9, 20)),
            last_result: Some(AttemptResult::NoAnswer),
            agent: Some("alice".into()),
            status: Status::Waiting,
            policy: Policy::default(),
        }
    }

    #[test]
    fn open_view_masks_for_viewers_and_counts_down() {
        let v = open_view(request(), at(9, 30), false);
        assert_eq!(v.number, "+3361xxxxx78");
        assert_eq!(v.status, "waiting");
        assert_eq!(v.origin, "caller");
        assert_eq!(v.seconds_to_deadline, 1800);
        assert_eq!(v.deadline_at, "2026-03-03T10:00:00Z");
        assert_eq!(v.next_attempt_at.as_deref(), Some("2026-03-03T09:20:00Z"));
        assert_eq!(v.last_result.as_deref(), Some("no-answer"));
        assert_eq!(v.completed_at, None);
        let mut r = request();
        r.status = Status::Offered {
            agent: "bob".into(),
        };
        let v = open_view(r, at(10, 5), true);
        assert_eq!(v.number, "+33612345678");
        assert_eq!(v.agent.as_deref(), Some("bob"));
        assert_eq!(v.seconds_to_deadline, -300);
    }

    #[test]
    fn stored_view_counts_to_the_closing() {
        let s = CallbackState {
            key: "c2-cb".into(),
            origin: permanence_records::CallbackOrigin::Overflow,
            call_id: "c2".into(),
            practice_id: "tilleuls".into(),
            number: "+33612345678".into(),
            requested_at: at(9, 0),
            joined_at: at(8, 58),
            priority: 0,
            triage_digit: None,
            deadline_at: at(10, 0),
            status: CallbackStatus::Cancelled,
            attempts: 0,
            next_attempt_at: None,
            last_attempt_at: None,
            last_result: None,
            agent: None,
            completed_at: Some(at(9, 10)),
            outbound_id: None,
        };
        let v = stored_view(s, at(12, 0), false);
        assert_eq!(v.status, "cancelled");
        assert_eq!(v.origin, "overflow");
        assert_eq!(v.number, "+3361xxxxx78");
        assert_eq!(v.seconds_to_deadline, 3000);
        assert_eq!(v.completed_at.as_deref(), Some("2026-03-03T09:10:00Z"));
    }
}
