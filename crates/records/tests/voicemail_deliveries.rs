//! Voicemail deliveries: written at each step (insert or replace by call
//! id), the pending ones read back in queue order, the caller's number
//! kept while pending only, closed ones purged with the calls, pending
//! ones never.

mod common;

use common::*;
use permanence_records::{Recorder, VoicemailDeliveryRow};

fn pending(call: &str, queued_secs: i64) -> VoicemailDeliveryRow {
    VoicemailDeliveryRow {
        call_id: call.to_owned(),
        practice_id: "martin".to_owned(),
        practice_name: "Cabinet du Dr Martin".to_owned(),
        timezone: "Europe/Paris".to_owned(),
        recipients: vec![
            "secretariat@cabinet-martin.fr".to_owned(),
            "dr.martin@cabinet-martin.fr".to_owned(),
        ],
        wav_path: format!("data/voicemail/martin/{call}.wav"),
        caller: Some("+33612345678".to_owned()),
        recorded_at: t0() + secs(queued_secs - 30),
        duration_secs: 12.5,
        triage: Some("Urgence (touche 1)".to_owned()),
        status: "pending".to_owned(),
        attempts: 0,
        queued_at: t0() + secs(queued_secs),
        next_attempt_at: Some(t0() + secs(queued_secs)),
        last_attempt_at: None,
        last_error: None,
        closed_at: None,
    }
}

#[test]
fn each_step_replaces_the_row_and_pending_ones_come_back_in_order() {
    let dir = TempDir::new("vm-steps");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    let (a, b) = (pending("c2", 10), pending("c1", 20));
    assert!(h.record_voicemail_delivery(b.clone()));
    assert!(h.record_voicemail_delivery(a.clone()));
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    assert_eq!(
        r.pending_voicemail_deliveries().expect("pending"),
        vec![a.clone(), b.clone()]
    );

    // A failed attempt, then the delivery of the first one.
    let failed = VoicemailDeliveryRow {
        attempts: 1,
        last_attempt_at: Some(t0() + secs(30)),
        next_attempt_at: Some(t0() + secs(90)),
        last_error: Some("connection refused".to_owned()),
        ..b.clone()
    };
    let delivered = VoicemailDeliveryRow {
        status: "delivered".to_owned(),
        attempts: 1,
        next_attempt_at: None,
        closed_at: Some(t0() + secs(31)),
        ..a.clone()
    };
    assert!(h.record_voicemail_delivery(failed.clone()));
    assert!(h.record_voicemail_delivery(delivered.clone()));
    h.flush().expect("flush");
    assert_eq!(
        r.pending_voicemail_deliveries().expect("pending"),
        vec![failed]
    );
    let all = r.voicemail_deliveries(10).expect("all");
    assert_eq!(all.len(), 2);
    // Closed: the number is gone, the rest is kept.
    assert_eq!(
        all[0],
        VoicemailDeliveryRow {
            caller: None,
            ..delivered
        }
    );
    drop(r);
    rec.shutdown().expect("shutdown");
}

#[test]
fn closed_deliveries_are_purged_with_the_calls_pending_ones_never() {
    let dir = TempDir::new("vm-purge");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    let old_pending = pending("old-pending", 0);
    let old_closed = VoicemailDeliveryRow {
        status: "expired".to_owned(),
        closed_at: Some(t0() + secs(100)),
        ..pending("old-closed", 1)
    };
    let recent_closed = VoicemailDeliveryRow {
        status: "delivered".to_owned(),
        ..pending("recent", 3600)
    };
    for row in [&old_pending, &old_closed, &recent_closed] {
        assert!(h.record_voicemail_delivery(row.clone()));
    }
    h.purge_older_than(t0() + secs(60)).expect("purge");
    let r = rec.reader().expect("reader");
    let ids: Vec<String> = r
        .voicemail_deliveries(10)
        .expect("all")
        .into_iter()
        .map(|d| d.call_id)
        .collect();
    assert_eq!(ids, ["old-pending", "recent"]);
    drop(r);
    rec.shutdown().expect("shutdown");
}
