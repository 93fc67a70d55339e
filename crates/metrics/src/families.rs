//! The metric families and their registration.

use arc_swap::ArcSwap;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::collector::{PracticeCollector, PracticeFamily};
use crate::render::Block;
use crate::{MetricsError, PracticeSet};

/// Every family, registered in one registry.
#[derive(Debug)]
pub(crate) struct Families {
    // Agents and calls.
    pub agents: IntGaugeVec,
    pub active_calls: IntGauge,
    pub registered_contacts: IntGauge,
    pub agents_lost: IntCounter,
    // Outbound calls (the per-practice ones are practice families).
    pub outbound_active: IntGauge,
    pub outbound_refused: IntCounterVec,
    // Memory.
    pub memory_heap: IntGauge,
    pub memory_resident: IntGauge,
    // SIP.
    pub sip_requests: IntCounterVec,
    pub sip_responses: IntCounterVec,
    pub sip_retransmissions: IntCounter,
    pub sip_parse_errors: IntCounterVec,
    pub sip_rejected: IntCounterVec,
    // RTP.
    pub rtp_packets: IntCounterVec,
    pub rtp_bytes: IntCounterVec,
    pub rtp_lost: IntCounter,
    pub rtp_late: IntCounter,
    pub rtp_foreign: IntCounter,
    pub rtp_srtp_refused: IntCounter,
    // Service.
    pub build_info: IntGaugeVec,
    pub records_dropped: IntCounter,
    pub calls_interrupted: IntCounter,
    pub records_healthy: IntGauge,
    pub records_write_failures: IntCounter,
    pub records_backlog: IntGauge,
    pub config_reloads: IntCounterVec,
}

fn reg<C: Collector + Clone + 'static>(r: &Registry, c: C) -> Result<C, MetricsError> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn int_gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    reg(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

fn counter(r: &Registry, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
    reg(r, IntCounter::with_opts(Opts::new(name, help))?)
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
    reg(r, IntGauge::with_opts(Opts::new(name, help))?)
}

impl Families {
    pub fn new(r: &Registry, set: &Arc<ArcSwap<PracticeSet>>) -> Result<Self, MetricsError> {
        for f in PracticeFamily::ALL {
            reg(r, PracticeCollector::new(f, set.clone())?)?;
        }
        Ok(Self {
            agents: int_gauge_vec(
                r,
                "permanence_agents",
                "Agents by state: logged_out, unreachable (logged in and free but no registered softphone or browser answers: offered no call), available (free and reachable), offered (ringing), on_call (a queued call or an outbound call), wrap_up, paused.",
                &["state"],
            )?,
            active_calls: int_gauge(
                r,
                "permanence_active_calls",
                "Forwarded calls in progress (any phase).",
            )?,
            registered_contacts: int_gauge(
                r,
                "permanence_registered_contacts",
                "Softphone contacts currently registered.",
            )?,
            outbound_active: int_gauge(
                r,
                "permanence_outbound_calls_active",
                "Outbound calls placed by agents in progress (dialling, ringing or answered).",
            )?,
            outbound_refused: counter_vec(
                r,
                "permanence_outbound_refused_total",
                "Outbound call attempts refused before anything left the switch, by reason (destination: not in the allow-list, the toll-fraud guard; invalid_number; no_practice: no caller ID could be chosen; not_served: the agent does not serve the practice named; too_many_calls: per-agent cap).",
                &["reason"],
            )?,
            memory_heap: int_gauge(
                r,
                "permanence_memory_heap_bytes",
                "Heap bytes currently allocated by the engine (live data, not what the allocator keeps).",
            )?,
            memory_resident: int_gauge(
                r,
                "permanence_memory_resident_bytes",
                "Resident set of the engine process (VmRSS).",
            )?,
            sip_requests: counter_vec(
                r,
                "permanence_sip_requests_total",
                "SIP requests received, by method.",
                &["method"],
            )?,
            sip_responses: counter_vec(
                r,
                "permanence_sip_responses_total",
                "SIP responses sent to received requests, by request method and status code.",
                &["method", "code"],
            )?,
            agents_lost: counter(
                r,
                "permanence_agents_lost_total",
                "Conversations whose telesecretary's softphone vanished without hanging up (a browser tab closed, its network lost); the caller went back to the head of the queue.",
            )?,
            sip_retransmissions: counter(
                r,
                "permanence_sip_retransmissions_total",
                "SIP messages retransmitted.",
            )?,
            sip_parse_errors: counter_vec(
                r,
                "permanence_sip_parse_errors_total",
                "Malformed SIP datagrams, answered with an error response or dropped.",
                &["action"],
            )?,
            sip_rejected: counter_vec(
                r,
                "permanence_sip_rejected_total",
                "SIP requests refused, by reason.",
                &["reason"],
            )?,
            rtp_packets: counter_vec(
                r,
                "permanence_rtp_packets_total",
                "RTP packets received (in) and sent (out).",
                &["direction"],
            )?,
            rtp_bytes: counter_vec(
                r,
                "permanence_rtp_bytes_total",
                "Bytes of RTP packets received (in) and sent (out).",
                &["direction"],
            )?,
            rtp_lost: counter(
                r,
                "permanence_rtp_lost_packets_total",
                "RTP packets missing in the received sequence numbers.",
            )?,
            rtp_late: counter(
                r,
                "permanence_rtp_late_packets_total",
                "RTP packets received late, out of order or duplicated.",
            )?,
            rtp_foreign: counter(
                r,
                "permanence_rtp_foreign_packets_total",
                "RTP packets dropped because they came from a source the call's media leg does not accept (hijack attempts, stray streams).",
            )?,
            rtp_srtp_refused: counter(
                r,
                "permanence_rtp_srtp_refused_packets_total",
                "SRTP packets dropped before anything else looks at them: failed authentication (forged, corrupted, another key) or replayed.",
            )?,
            build_info: int_gauge_vec(
                r,
                "permanence_build_info",
                "Always 1; the version label names the running build.",
                &["version"],
            )?,
            calls_interrupted: counter(
                r,
                "permanence_calls_interrupted_total",
                "Calls the engine stopped in the middle of (crash, kill), found open in the call records and closed as interrupted at the next start.",
            )?,
            records_dropped: counter(
                r,
                "permanence_records_dropped_total",
                "Call records, queue events and callback requests lost: refused because the writer fell behind, dropped beyond the backlog while the store was failing, or refused by the database.",
            )?,
            records_healthy: int_gauge(
                r,
                "permanence_records_healthy",
                "1 while the call records store writes, 0 while it is degraded (writes or opening fail; rows are kept in memory and retried).",
            )?,
            records_write_failures: counter(
                r,
                "permanence_records_write_failures_total",
                "Failed attempts to write (or open) the call records store, each retried later.",
            )?,
            records_backlog: int_gauge(
                r,
                "permanence_records_backlog",
                "Call records and events kept in memory waiting for the store to accept them.",
            )?,
            config_reloads: counter_vec(
                r,
                "permanence_config_reloads_total",
                "Configuration reloads, by result.",
                &["result"],
            )?,
        })
    }

    /// Every family as a rendering block, in name order.
    pub fn blocks(&self) -> Vec<Block> {
        fn g<C: Collector + Clone + 'static>(c: &C) -> Block {
            Block::Global(Box::new(c.clone()))
        }
        let mut blocks: Vec<Block> = PracticeFamily::ALL
            .iter()
            .map(|f| Block::Practice(*f))
            .collect();
        blocks.extend([
            g(&self.agents),
            g(&self.active_calls),
            g(&self.registered_contacts),
            g(&self.agents_lost),
            g(&self.outbound_active),
            g(&self.outbound_refused),
            g(&self.memory_heap),
            g(&self.memory_resident),
            g(&self.sip_requests),
            g(&self.sip_responses),
            g(&self.sip_retransmissions),
            g(&self.sip_parse_errors),
            g(&self.sip_rejected),
            g(&self.rtp_packets),
            g(&self.rtp_bytes),
            g(&self.rtp_lost),
            g(&self.rtp_late),
            g(&self.rtp_foreign),
            g(&self.rtp_srtp_refused),
            g(&self.build_info),
            g(&self.records_dropped),
            g(&self.calls_interrupted),
            g(&self.records_healthy),
            g(&self.records_write_failures),
            g(&self.records_backlog),
            g(&self.config_reloads),
        ]);
        blocks.sort_by_key(Block::name);
        blocks
    }
}
