//! Scrape cost at 5,000 practices.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-metrics cargo bench -p permanence-metrics --bench scrape`
//!
//! Every family is populated: each practice has non-zero counters in every
//! label combination and observations in every histogram; SIP responses
//! exist for the usual (method, code) pairs. The measured scrape is what
//! the HTTP handler does: apply a fresh gauge snapshot (5,000 practices,
//! agent states) and render the text exposition.
//!
//! * `scrape/refresh_and_render_5000`: `set_gauges_from` + `render()`;
//! * `scrape/refresh_and_render_into_5000`: the same, reusing the output
//!   buffer between scrapes (`render_into`);
//! * `scrape/refresh_only_5000`: `set_gauges_from` alone.
//! * `recorder/call_lifecycle`: the dispatcher-task cost of one answered
//!   call's events (queued, offered, answered, completed, wrap-up start and
//!   end) through `AcdRecorder::on_event`, at 5,000 practices.
//! * `outbound/started_and_ended`: one outbound call's metrics
//!   (`outbound_started` + `outbound_ended`, which looks the practice up
//!   in the current set), at 5,000 practices.
//! * `callbacks/requested_attempted_completed`: one callback's metrics
//!   (`callback_requested`, two `callback_attempt`s, `callback_completed`,
//!   each looking the practice up in the current set), at 5,000
//!   practices.
//! * `callbacks/set_queue_5000`: the callback queue gauges of every
//!   practice (`set_callback_queue` × 5,000), as before a scrape.

use std::hint::black_box;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use permanence_acd::{
    AbandonPhase, AgentState, CallId, ChangeReason, Event, OverflowTarget, PracticeId,
};

/// One target of each `target` label value.
fn overflow_targets() -> [OverflowTarget; 4] {
    [
        OverflowTarget::Voicemail,
        OverflowTarget::Callback,
        OverflowTarget::Hangup,
        OverflowTarget::Pool("shared".into()),
    ]
}
use permanence_metrics::{
    AcdGauges, AgentCounts, CallbackAttemptResult, CallbackFailure, CallbackOrigin, Metrics,
    OfferResult, OutboundOutcome, OutboundRefusal, PracticeGauges, RtpTotals, SipMethod, SipReject,
    DEFAULT_SHORT_ABANDON,
};

const PRACTICES: usize = 5_000;

fn populated() -> (std::sync::Arc<Metrics>, AcdGauges) {
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    let ids: Vec<String> = (0..PRACTICES).map(|i| format!("cabinet-{i:05}")).collect();
    m.practices(&ids).expect("practices");
    let mut gauges = AcdGauges::default();
    for (i, id) in ids.iter().enumerate() {
        let h = m.practice(id).expect("practice");
        let s = (i % 400) as u64;
        h.queue_entered();
        h.call_ended(permanence_types::Disposition::Closed, Duration::ZERO);
        h.queue_answered(Duration::from_secs(s), Some(Duration::from_secs(s % 20)));
        h.call_completed(Duration::from_secs(s * 3));
        h.wrap_up_done(Duration::from_secs(s % 60));
        for phase in [AbandonPhase::Queue, AbandonPhase::Ringing] {
            h.queue_abandoned(phase, Duration::from_secs(2), true);
            h.queue_abandoned(phase, Duration::from_secs(s), false);
        }
        for t in overflow_targets() {
            h.queue_overflowed(&t);
        }
        for r in OfferResult::ALL {
            h.offer_ended(r);
        }
        for o in OutboundOutcome::ALL {
            m.outbound_started();
            m.outbound_ended(id, o, Duration::from_secs(s));
        }
        for o in CallbackOrigin::ALL {
            m.callback_requested(id, o);
        }
        for r in CallbackAttemptResult::ALL {
            m.callback_attempt(id, r);
        }
        m.callback_completed(id, true);
        m.callback_completed(id, false);
        for r in CallbackFailure::ALL {
            m.callback_failed(id, r);
        }
        m.callback_handled(id);
        callback_queue(&m, id, i);
        gauges.practices.push(PracticeGauges {
            practice: PracticeId::new(id),
            open: i % 3 != 0,
            waiting: (i % 7) as u32,
            oldest_wait: Some(Duration::from_millis(i as u64 * 37)),
            estimated_wait: (i % 11 != 0).then(|| Duration::from_millis(i as u64 * 13)),
            eligible: (i % 5) as u32,
        });
    }
    gauges.agents = AgentCounts([40, 10, 290, 20, 250, 60, 30]);
    for method in SipMethod::ALL {
        m.sip_request(method);
        for code in [
            100, 180, 183, 200, 202, 401, 403, 404, 408, 480, 486, 487, 500, 503, 603,
        ] {
            m.sip_response(method, code);
        }
    }
    m.sip_retransmission();
    for r in SipReject::ALL {
        m.sip_rejected(r);
    }
    for r in OutboundRefusal::ALL {
        m.outbound_refused(r);
    }
    m.sync_sip_parse_errors(3, 7);
    m.rtp_add(&RtpTotals {
        packets_in: 1_000_000,
        bytes_in: 172_000_000,
        packets_out: 1_000_100,
        bytes_out: 172_017_200,
        lost: 120,
        late: 40,
        foreign: 3,
        srtp_refused: 2,
    });
    m.set_active_calls(420);
    m.set_registered_contacts(700);
    m.records_dropped(0);
    m.config_reload(true);
    m.config_reload(false);
    (m, gauges)
}

/// Sets the callback queue of practice number `i`: most are empty (the
/// sentinel), some have requests pending, a few past their deadline.
fn callback_queue(m: &Metrics, id: &str, i: usize) {
    match i % 4 {
        0 => m.set_callback_queue(
            id,
            (i % 5) as u32 + 1,
            Duration::from_millis(i as u64 * 41),
            Some(3600 - (i % 4000) as i64),
        ),
        _ => m.set_callback_queue(id, 0, Duration::ZERO, None),
    }
}

fn scrape(c: &mut Criterion) {
    let (m, gauges) = populated();
    let text = m.render();
    eprintln!(
        "scrape at {PRACTICES} practices: {} lines, {} bytes",
        text.lines().count(),
        text.len()
    );
    let mut g = c.benchmark_group("scrape");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("refresh_and_render_5000", |b| {
        b.iter(|| {
            m.set_gauges_from(black_box(&gauges));
            black_box(m.render())
        })
    });
    let mut buf = String::new();
    g.bench_function("refresh_and_render_into_5000", |b| {
        b.iter(|| {
            buf.clear();
            m.set_gauges_from(black_box(&gauges));
            m.render_into(&mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("refresh_only_5000", |b| {
        b.iter(|| m.set_gauges_from(black_box(&gauges)))
    });
    g.finish();
}

fn recorder(c: &mut Criterion) {
    let (m, _) = populated();
    let mut r = m.recorder();
    let t0 = Utc
        .with_ymd_and_hms(2026, 1, 12, 9, 0, 0)
        .single()
        .expect("t0");
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    let mut n = 0u64;
    let mut g = c.benchmark_group("recorder");
    g.throughput(criterion::Throughput::Elements(6));
    g.bench_function("call_lifecycle", |b| {
        b.iter(|| {
            n += 1;
            let call = CallId(n);
            let practice = PracticeId::new(format!("cabinet-{:05}", n % PRACTICES as u64));
            let agent: permanence_acd::AgentId = "alice".into();
            let events = [
                (
                    0,
                    Event::CallQueued {
                        call,
                        practice,
                        priority: 0,
                        rejoined: false,
                    },
                ),
                (
                    1,
                    Event::Offered {
                        call,
                        agent: agent.clone(),
                    },
                ),
                (
                    7,
                    Event::Answered {
                        call,
                        agent: agent.clone(),
                        wait: Duration::from_secs(7),
                    },
                ),
                (
                    187,
                    Event::CallCompleted {
                        call,
                        agent: agent.clone(),
                        talk: Duration::from_secs(180),
                    },
                ),
                (
                    187,
                    Event::AgentStateChanged {
                        agent: agent.clone(),
                        from: AgentState::OnCall,
                        to: AgentState::WrapUp,
                        reason: ChangeReason::CallEnded,
                    },
                ),
                (
                    217,
                    Event::AgentStateChanged {
                        agent,
                        from: AgentState::WrapUp,
                        to: AgentState::Available,
                        reason: ChangeReason::WrapUpEnded,
                    },
                ),
            ];
            for (s, e) in &events {
                r.on_event(black_box(e), at(*s));
            }
        })
    });
    g.finish();
}

fn outbound(c: &mut Criterion) {
    let (m, _) = populated();
    let ids: Vec<String> = (0..PRACTICES).map(|i| format!("cabinet-{i:05}")).collect();
    let mut n = 0usize;
    let mut g = c.benchmark_group("outbound");
    g.bench_function("started_and_ended", |b| {
        b.iter(|| {
            n = (n + 1) % PRACTICES;
            let id = ids.get(n).map_or("", String::as_str);
            m.outbound_started();
            m.outbound_ended(
                black_box(id),
                OutboundOutcome::Answered,
                Duration::from_secs(95),
            );
        })
    });
    g.finish();
}

fn callbacks(c: &mut Criterion) {
    let (m, _) = populated();
    let ids: Vec<String> = (0..PRACTICES).map(|i| format!("cabinet-{i:05}")).collect();
    let mut n = 0usize;
    let mut g = c.benchmark_group("callbacks");
    g.bench_function("requested_attempted_completed", |b| {
        b.iter(|| {
            n = (n + 1) % PRACTICES;
            let id = black_box(ids.get(n).map_or("", String::as_str));
            m.callback_requested(id, CallbackOrigin::Caller);
            m.callback_attempt(id, CallbackAttemptResult::NoAnswer);
            m.callback_attempt(id, CallbackAttemptResult::Answered);
            m.callback_completed(id, true);
        })
    });
    g.bench_function("set_queue_5000", |b| {
        b.iter(|| {
            for (i, id) in ids.iter().enumerate() {
                callback_queue(&m, black_box(id), i);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, scrape, recorder, outbound, callbacks);
criterion_main!(benches);
