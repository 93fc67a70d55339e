//! The hand-written exposition is byte-identical to the prometheus crate's
//! `gather()` + `TextEncoder` on the same registry.

use std::time::Duration;

use permanence_acd::{AbandonPhase, OverflowTarget, PracticeId};
use permanence_metrics::{
    AcdGauges, AgentCounts, CallbackAttemptResult, CallbackFailure, CallbackOrigin, Metrics,
    OfferResult, OutboundOutcome, OutboundRefusal, PracticeGauges, RtpTotals, SipMethod, SipReject,
    DEFAULT_SHORT_ABANDON,
};
use permanence_types::{AbandonPhase as CallPhase, Disposition, OverflowKind};
use prometheus::{Encoder, TextEncoder};

fn reference(m: &Metrics) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&m.registry().gather(), &mut buf)
        .expect("encode");
    String::from_utf8(buf).expect("utf8")
}

#[test]
fn empty_metrics_render_like_the_encoder() {
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    assert_eq!(m.render(), reference(&m));
    m.practices::<&str>(&[]).expect("practices");
    assert_eq!(m.render(), reference(&m));
}

#[test]
fn populated_metrics_render_like_the_encoder() {
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    // Odd ids: escaping, byte order (upper case before lower case, UTF-8).
    let ids = [
        "martin",
        "Zeta",
        "caron",
        "quote\"d",
        "back\\slash",
        "new\nline",
        "été",
        "a",
        "kine-dupont",
    ];
    m.practices(&ids).expect("practices");
    let mut gauges = AcdGauges::default();
    for (i, id) in ids.iter().enumerate() {
        let h = m.practice(id).expect("practice");
        for _ in 0..=i {
            h.queue_entered();
        }
        h.queue_answered(
            Duration::from_millis(1234 * i as u64),
            Some(Duration::from_millis(700)),
        );
        h.queue_abandoned(
            AbandonPhase::Queue,
            Duration::from_secs(i as u64 * 4),
            false,
        );
        h.queue_abandoned(AbandonPhase::Ringing, Duration::from_millis(10), true);
        let targets = [
            OverflowTarget::Voicemail,
            OverflowTarget::Callback,
            OverflowTarget::Hangup,
            OverflowTarget::Pool("shared".into()),
        ];
        h.queue_overflowed(&targets[i % 4]);
        h.offer_ended(OfferResult::ALL[i % 6]);
        h.call_completed(Duration::from_secs(400 + i as u64));
        h.wrap_up_done(Duration::from_millis(29_999));
        h.call_ended(Disposition::Closed, Duration::ZERO);
        h.call_ended(Disposition::Answered, Duration::from_secs(30));
        h.call_ended(
            Disposition::Abandoned(CallPhase::ALL[i % 6]),
            Duration::from_secs(i as u64 * 3),
        );
        h.call_ended(
            Disposition::Overflowed(OverflowKind::ALL[i % 3]),
            Duration::from_secs(60),
        );
        h.call_ended(Disposition::CallbackRequested, Duration::from_secs(60));
        h.call_ended(Disposition::Failed, Duration::from_secs(60));
        h.call_ended(Disposition::Unanswered, Duration::ZERO);
        m.outbound_started();
        m.outbound_ended(
            id,
            OutboundOutcome::ALL[i % 5],
            Duration::from_millis(61_234 * i as u64 + 1),
        );
        m.callback_requested(id, CallbackOrigin::ALL[i % 2]);
        for _ in 0..i {
            m.callback_attempt(id, CallbackAttemptResult::ALL[i % 4]);
        }
        m.callback_completed(id, i % 3 != 0);
        m.callback_failed(id, CallbackFailure::ALL[i % 5]);
        if i % 2 == 1 {
            m.callback_handled(id);
        }
        // Pending with a margin (some missed), pending without one, empty.
        match i % 3 {
            0 => m.set_callback_queue(
                id,
                i as u32,
                Duration::from_millis(61_500 * i as u64),
                Some(3600 - 700 * i as i64),
            ),
            1 => m.set_callback_queue(id, 1, Duration::from_secs(5), None),
            _ => m.set_callback_queue(id, 0, Duration::ZERO, None),
        }
        gauges.practices.push(PracticeGauges {
            practice: PracticeId::new(id),
            open: i % 2 == 0,
            waiting: i as u32,
            oldest_wait: (i % 3 != 0).then(|| Duration::from_millis(12_345 * i as u64)),
            estimated_wait: (i % 4 != 0).then(|| Duration::from_millis(777 * i as u64)),
            eligible: 2 * i as u32,
        });
    }
    gauges.agents = AgentCounts([1, 2, 3, 4, 5, 6, 7]);
    m.set_gauges_from(&gauges);
    m.sip_request(SipMethod::Invite);
    m.sip_request(SipMethod::parse("FOO"));
    m.sip_response(SipMethod::Invite, 200);
    m.sip_response(SipMethod::Invite, 486);
    m.sip_response(SipMethod::Register, 401);
    m.sip_response(SipMethod::Options, 9999);
    m.sip_retransmission();
    m.sip_rejected(SipReject::Auth);
    m.sync_sip_parse_errors(2, 5);
    m.rtp_add(&RtpTotals {
        packets_in: 10,
        bytes_in: 1720,
        packets_out: 12,
        bytes_out: 2064,
        lost: 1,
        late: 2,
        foreign: 5,
        srtp_refused: 1,
    });
    m.set_active_calls(3);
    m.set_registered_contacts(4);
    m.records_dropped(1);
    m.sync_records(false, 7, 3);
    m.config_reload(false);
    m.outbound_started();
    m.outbound_ended("unknown", OutboundOutcome::Busy, Duration::ZERO);
    m.outbound_started();
    m.outbound_refused(OutboundRefusal::Destination);
    m.outbound_refused(OutboundRefusal::TooManyCalls);
    m.callback_requested("unknown", CallbackOrigin::Caller);
    m.set_callback_queue("unknown", 3, Duration::from_secs(1), Some(-1));
    let ours = m.render();
    let theirs = reference(&m);
    if ours != theirs {
        for (i, (a, b)) in ours.lines().zip(theirs.lines()).enumerate() {
            assert_eq!(a, b, "first difference at line {i}");
        }
        assert_eq!(ours.lines().count(), theirs.lines().count());
    }
    assert_eq!(ours, theirs);
}
