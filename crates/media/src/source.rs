//! Strict RTP source learning: which address a leg accepts media from and
//! sends media to (like Asterisk's `strictrtp` or rtpengine's strict
//! source). Sans-IO and allocation-free: the leg task feeds it each valid
//! RTP packet's source, SSRC and sequence number and acts on the
//! [`Verdict`].
//!
//! The rules, exactly:
//!
//! 1. **Learning.** After the remote is signalled ([`SourceGuard::signal`]),
//!    a source may be learnt only if its IP is the peer's SDP connection
//!    address or the IP its SIP signalling came from (NATed softphones and
//!    some carriers put a private address in SDP). A source is learnt once
//!    it has sent `probation` packets in a row with one SSRC and
//!    consecutive sequence numbers (late or duplicate packets neither count
//!    nor break the run; anything else restarts it). Until then its
//!    packets are [`Verdict::Probation`]: dropped (not played, relayed,
//!    recorded nor decoded as DTMF), and nothing is sent to it. Up to
//!    [`CANDIDATES`] sources can be in probation at once, so one source
//!    cannot keep resetting another's run.
//! 2. **Locked.** Once learnt, only packets from that exact address
//!    (IP and port) are accepted, whatever the silence; any other source is
//!    [`Verdict::Foreign`]. Comfort noise and DTMF from the locked source
//!    are packets like any other.
//! 3. **Re-learning.** Only a *signalled change*: a new remote whose SDP
//!    address or signalling IP differs (re-INVITE/UPDATE that moves the
//!    media) starts learning again. A new remote naming the same peer
//!    (session refresh, hold and resume, codec change) keeps the lock.
//! 4. **NAT rebinding.** A new source (any IP) takes over the lock (or
//!    is learnt while learning) if it *continues the verified stream*: the
//!    SSRC last seen from the locked source, sequence numbers ahead of the
//!    highest one seen from it by at most [`MOVE_WINDOW`], for `probation`
//!    consecutive packets. That is what a NAT rebinding produces; an
//!    off-path sender does not know the 32-bit SSRC nor the sequence.
//!
//! An attacker who never sees the peer's stream therefore can neither be
//! learnt nor take a locked leg over, and receives nothing: the send
//! destination is only ever the SDP address or a source the guard has
//! learnt.

use std::net::{IpAddr, SocketAddr};

/// Default probation: packets in sequence before a source is learnt (3
/// packets: 40 ms of audio dropped at the start of a 20 ms stream).
pub const DEFAULT_PROBATION: u8 = 3;
/// How far ahead of the verified stream's highest sequence number a NAT
/// rebinding may resume (packets lost while the binding changed; RFC 3550's
/// `MAX_DROPOUT`).
pub const MOVE_WINDOW: u16 = 3000;
/// Sources that can be in probation at the same time.
pub const CANDIDATES: usize = 4;

/// The peer a leg is signalled to talk to: its SDP address and the IP its
/// signalling came from. A hold with `c=0.0.0.0` (no SDP address) keeps
/// the last known address: it says "do not send", not "I moved".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalledPeer {
    /// SDP connection address and port (the last known one while held).
    pub sdp: Option<SocketAddr>,
    /// Source IP of the peer's SIP signalling.
    pub signalling: Option<IpAddr>,
}

impl SignalledPeer {
    /// The peer once `sdp` / `signalling` are signalled after `prev`.
    pub fn next(
        prev: Option<SignalledPeer>,
        sdp: Option<SocketAddr>,
        signalling: Option<IpAddr>,
    ) -> Self {
        SignalledPeer {
            sdp: sdp.or(prev.and_then(|p| p.sdp)),
            signalling,
        }
    }
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the locked source: process it.
    Accept,
    /// This packet completed the probation of a source, which is now the
    /// locked one (first learnt, or re-learnt after a signalled change):
    /// send there from now on, and process the packet.
    Learned(SocketAddr),
    /// This packet completed the proof that the locked stream moved to a
    /// new address (NAT rebinding): send there from now on, and process it.
    Moved(SocketAddr),
    /// A source in probation: drop the packet (it counts towards the
    /// source's probation only).
    Probation,
    /// Not a source this leg may accept: drop the packet and count it.
    Foreign(ForeignKind),
}

/// Why a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignKind {
    /// While learning: its IP is neither the SDP address nor the
    /// signalling source.
    Unexpected,
    /// A source is locked and this is another one (that does not continue
    /// its stream).
    Locked,
}

impl ForeignKind {
    /// A stable name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ForeignKind::Unexpected => "unexpected-address",
            ForeignKind::Locked => "source-locked",
        }
    }
}

/// A source in probation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    addr: SocketAddr,
    ssrc: u32,
    seq: u16,
    count: u8,
}

/// The source learning state of one leg (see the module documentation for
/// the rules). Fixed size, no allocation.
#[derive(Debug, Clone)]
pub struct SourceGuard {
    probation: u8,
    /// The peer as signalled.
    signalled: Option<SignalledPeer>,
    /// IPs a source may be learnt from (SDP address, signalling source).
    expected: [Option<IpAddr>; 2],
    locked: Option<SocketAddr>,
    /// SSRC and highest sequence number of the verified stream (kept across
    /// a re-learning: a stream continuing it is still the same peer).
    verified: Option<(u32, u16)>,
    runs: [Option<Run>; CANDIDATES],
    /// Next slot to reuse when every slot is taken.
    evict: usize,
}

impl SourceGuard {
    /// A guard learning nothing until the remote is signalled; a source is
    /// learnt after `probation` packets in sequence (at least 1).
    pub fn new(probation: u8) -> Self {
        SourceGuard {
            probation: probation.max(1),
            signalled: None,
            expected: [None; 2],
            locked: None,
            verified: None,
            runs: [None; CANDIDATES],
            evict: 0,
        }
    }

    /// The remote as signalled (SDP connection address and port, IP the
    /// SIP signalling came from; see [`SignalledPeer::next`]). Returns true
    /// when this starts learning again (first call, or a different peer);
    /// the same peer keeps the locked source.
    pub fn signal(&mut self, sdp: Option<SocketAddr>, signalling: Option<IpAddr>) -> bool {
        let peer = SignalledPeer::next(self.signalled, sdp, signalling);
        let changed = self.signalled != Some(peer);
        self.signalled = Some(peer);
        if changed {
            self.expected = [
                peer.sdp.map(|a| a.ip().to_canonical()),
                signalling.map(|ip| ip.to_canonical()),
            ];
            self.locked = None;
            self.runs = [None; CANDIDATES];
        }
        changed
    }

    /// The locked source, if any.
    pub fn locked(&self) -> Option<SocketAddr> {
        self.locked
    }

    /// Whether a source at `ip` may be learnt (while learning).
    pub fn expects(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.expected.contains(&Some(ip))
    }

    /// Judges one valid RTP packet (audio, DTMF or comfort noise of the
    /// negotiated session) from `src`.
    #[inline]
    pub fn check(&mut self, src: SocketAddr, ssrc: u32, seq: u16) -> Verdict {
        // The per-packet fast path (inlined into the leg's receive loop).
        if self.locked.as_ref().is_some_and(|l| *l == src) {
            self.note_verified(ssrc, seq);
            return Verdict::Accept;
        }
        self.check_other(src, ssrc, seq)
    }

    /// [`SourceGuard::check`] for a packet not from the locked source.
    #[inline(never)]
    fn check_other(&mut self, src: SocketAddr, ssrc: u32, seq: u16) -> Verdict {
        if self.signalled.is_none() {
            return Verdict::Foreign(ForeignKind::Unexpected);
        }
        let learning = self.locked.is_none();
        let admissible = self.continues(ssrc, seq) || (learning && self.expects(src.ip()));
        if !admissible {
            return Verdict::Foreign(if learning {
                ForeignKind::Unexpected
            } else {
                ForeignKind::Locked
            });
        }
        if !self.probe(src, ssrc, seq) {
            return Verdict::Probation;
        }
        self.locked = Some(src);
        self.runs = [None; CANDIDATES];
        self.verified = Some((ssrc, seq));
        if learning {
            Verdict::Learned(src)
        } else {
            Verdict::Moved(src)
        }
    }

    /// Whether (`ssrc`, `seq`) continues the verified stream.
    fn continues(&self, ssrc: u32, seq: u16) -> bool {
        self.verified.is_some_and(|(s, max)| {
            let ahead = seq.wrapping_sub(max);
            s == ssrc && (1..=MOVE_WINDOW).contains(&ahead)
        })
    }

    #[inline]
    fn note_verified(&mut self, ssrc: u32, seq: u16) {
        match &mut self.verified {
            Some((s, max)) if *s == ssrc => {
                if (1..0x8000).contains(&seq.wrapping_sub(*max)) {
                    *max = seq;
                }
            }
            v => *v = Some((ssrc, seq)),
        }
    }

    /// Counts the packet in its source's probation run; true once the run
    /// reaches the probation length.
    fn probe(&mut self, src: SocketAddr, ssrc: u32, seq: u16) -> bool {
        let fresh = Run {
            addr: src,
            ssrc,
            seq,
            count: 1,
        };
        let slot = match self
            .runs
            .iter()
            .position(|r| r.is_some_and(|r| r.addr == src))
        {
            Some(i) => i,
            None => {
                let i = match self.runs.iter().position(Option::is_none) {
                    Some(i) => i,
                    None => {
                        let i = self.evict % CANDIDATES;
                        self.evict = (i + 1) % CANDIDATES;
                        i
                    }
                };
                if let Some(r) = self.runs.get_mut(i) {
                    *r = Some(fresh);
                }
                return fresh.count >= self.probation;
            }
        };
        let Some(Some(run)) = self.runs.get_mut(slot) else {
            return false;
        };
        let ahead = seq.wrapping_sub(run.seq);
        if run.ssrc == ssrc && ahead == 1 {
            run.seq = seq;
            run.count = run.count.saturating_add(1);
        } else if run.ssrc == ssrc && (ahead == 0 || ahead >= 0x8000) {
            // Late or duplicate: neither counts nor breaks the run.
        } else {
            *run = fresh;
        }
        run.count >= self.probation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const SDP: &str = "192.0.2.10:4000";
    const NAT: &str = "198.51.100.7:31000";

    fn guard() -> SourceGuard {
        let mut g = SourceGuard::new(3);
        assert!(g.signal(Some(a(SDP)), Some("198.51.100.7".parse().unwrap())));
        g
    }

    /// Feeds `n` packets of one stream; returns the verdicts.
    fn feed(g: &mut SourceGuard, src: &str, ssrc: u32, seq0: u16, n: u16) -> Vec<Verdict> {
        (0..n)
            .map(|i| g.check(a(src), ssrc, seq0.wrapping_add(i)))
            .collect()
    }

    #[test]
    fn probation_then_lock_from_the_sdp_address() {
        let mut g = guard();
        let v = feed(&mut g, SDP, 7, 65534, 4);
        assert_eq!(
            v,
            [
                Verdict::Probation,
                Verdict::Probation,
                Verdict::Learned(a(SDP)),
                Verdict::Accept
            ]
        );
        assert_eq!(g.locked(), Some(a(SDP)));
    }

    #[test]
    fn nated_source_is_learnt_from_the_signalling_ip() {
        let mut g = guard();
        assert_eq!(feed(&mut g, NAT, 1, 10, 3)[2], Verdict::Learned(a(NAT)));
    }

    #[test]
    fn unexpected_ips_are_never_learnt() {
        let mut g = guard();
        for v in feed(&mut g, "203.0.113.66:5000", 9, 0, 50) {
            assert_eq!(v, Verdict::Foreign(ForeignKind::Unexpected));
        }
        assert_eq!(g.locked(), None);
        // Nothing is learnt before the remote is signalled either.
        let mut fresh = SourceGuard::new(3);
        assert_eq!(
            fresh.check(a(SDP), 1, 1),
            Verdict::Foreign(ForeignKind::Unexpected)
        );
    }

    #[test]
    fn broken_sequence_restarts_probation_late_packets_do_not() {
        let mut g = guard();
        assert_eq!(g.check(a(SDP), 7, 100), Verdict::Probation);
        assert_eq!(g.check(a(SDP), 7, 101), Verdict::Probation);
        assert_eq!(g.check(a(SDP), 7, 101), Verdict::Probation, "duplicate");
        assert_eq!(g.check(a(SDP), 7, 99), Verdict::Probation, "late");
        assert_eq!(g.check(a(SDP), 7, 102), Verdict::Learned(a(SDP)));
        let mut g = guard();
        feed(&mut g, SDP, 7, 100, 2);
        assert_eq!(g.check(a(SDP), 7, 110), Verdict::Probation, "gap restarts");
        assert_eq!(
            g.check(a(SDP), 8, 111),
            Verdict::Probation,
            "new SSRC restarts"
        );
        assert_eq!(g.check(a(SDP), 8, 112), Verdict::Probation);
        assert_eq!(g.check(a(SDP), 8, 113), Verdict::Learned(a(SDP)));
    }

    #[test]
    fn interleaved_sources_do_not_reset_each_other() {
        let mut g = guard();
        let other = "192.0.2.10:4002";
        assert_eq!(g.check(a(SDP), 1, 10), Verdict::Probation);
        assert_eq!(g.check(a(other), 2, 500), Verdict::Probation);
        assert_eq!(g.check(a(SDP), 1, 11), Verdict::Probation);
        assert_eq!(g.check(a(other), 2, 501), Verdict::Probation);
        assert_eq!(g.check(a(SDP), 1, 12), Verdict::Learned(a(SDP)));
        assert_eq!(
            g.check(a(other), 2, 502),
            Verdict::Foreign(ForeignKind::Locked)
        );
    }

    #[test]
    fn locked_source_is_kept_whatever_the_silence() {
        let mut g = guard();
        feed(&mut g, SDP, 7, 0, 3);
        // Another source at the same (expected) IP, in sequence, for long:
        // refused. Time does not exist here: silence changes nothing.
        for v in feed(&mut g, "192.0.2.10:4002", 99, 0, 100) {
            assert_eq!(v, Verdict::Foreign(ForeignKind::Locked));
        }
        assert_eq!(g.check(a(SDP), 7, 3), Verdict::Accept);
        // The locked source may change SSRC (a new stream of the same peer).
        assert_eq!(g.check(a(SDP), 8, 40_000), Verdict::Accept);
    }

    #[test]
    fn same_peer_signalled_again_keeps_the_lock_a_change_relearns() {
        let mut g = guard();
        feed(&mut g, NAT, 7, 0, 3);
        assert!(!g.signal(Some(a(SDP)), Some("198.51.100.7".parse().unwrap())));
        assert_eq!(g.locked(), Some(a(NAT)));
        assert_eq!(g.check(a(NAT), 7, 3), Verdict::Accept);
        // re-INVITE moving the media to a new address: learning again; the
        // old source is refused unless it is the new expected one.
        let moved = "192.0.2.20:6000";
        assert!(g.signal(Some(a(moved)), None));
        assert_eq!(g.locked(), None);
        assert_eq!(
            g.check(a(NAT), 5, 77),
            Verdict::Foreign(ForeignKind::Unexpected)
        );
        assert_eq!(feed(&mut g, moved, 5, 0, 3)[2], Verdict::Learned(a(moved)));
    }

    #[test]
    fn hold_without_address_keeps_the_lock_and_the_address() {
        let mut g = guard();
        let ip = Some("198.51.100.7".parse().unwrap());
        feed(&mut g, NAT, 7, 0, 3);
        assert!(!g.signal(None, ip), "c=0.0.0.0 hold: same peer");
        assert_eq!(g.check(a(NAT), 7, 3), Verdict::Accept);
        assert!(!g.signal(Some(a(SDP)), ip), "resumed at the same address");
        assert_eq!(g.locked(), Some(a(NAT)));
        assert!(
            g.signal(Some(a("192.0.2.10:4100")), ip),
            "resumed elsewhere"
        );
        assert_eq!(g.locked(), None);
    }

    #[test]
    fn nat_rebinding_continuing_the_stream_moves_the_lock() {
        let mut g = guard();
        feed(&mut g, NAT, 0xABCD, 1000, 10); // highest seq 1009
        let rebound = "203.0.113.9:40000";
        // Same SSRC, sequence resuming a little ahead (a few packets lost).
        assert_eq!(g.check(a(rebound), 0xABCD, 1015), Verdict::Probation);
        assert_eq!(g.check(a(rebound), 0xABCD, 1016), Verdict::Probation);
        assert_eq!(
            g.check(a(rebound), 0xABCD, 1017),
            Verdict::Moved(a(rebound))
        );
        assert_eq!(g.locked(), Some(a(rebound)));
        assert_eq!(g.check(a(rebound), 0xABCD, 1018), Verdict::Accept);
        // Stale packets through the old binding are behind the stream now.
        assert_eq!(
            g.check(a(NAT), 0xABCD, 1016),
            Verdict::Foreign(ForeignKind::Locked),
        );
        assert_eq!(
            g.check(a(NAT), 0xABCD, 1018),
            Verdict::Foreign(ForeignKind::Locked),
        );
    }

    #[test]
    fn rebinding_needs_the_ssrc_and_an_in_window_sequence() {
        let mut g = guard();
        feed(&mut g, NAT, 0xABCD, 1000, 10);
        let other = "203.0.113.9:40000";
        let locked = Verdict::Foreign(ForeignKind::Locked);
        // Wrong SSRC.
        for v in feed(&mut g, other, 0xABCE, 1010, 20) {
            assert_eq!(v, locked);
        }
        // Right SSRC, sequence behind the stream (replayed) or too far ahead.
        for v in feed(&mut g, other, 0xABCD, 900, 20) {
            assert_eq!(v, locked);
        }
        for v in feed(&mut g, other, 0xABCD, 1010 + MOVE_WINDOW, 20) {
            assert_eq!(v, locked);
        }
        // While the locked source keeps sending, a copy of its stream from
        // elsewhere falls behind it and never completes probation.
        assert_eq!(g.check(a(other), 0xABCD, 1010), Verdict::Probation);
        assert_eq!(g.check(a(NAT), 0xABCD, 1010), Verdict::Accept);
        assert_eq!(g.check(a(NAT), 0xABCD, 1011), Verdict::Accept);
        assert_eq!(g.check(a(other), 0xABCD, 1011), locked);
        assert_eq!(g.locked(), Some(a(NAT)));
    }

    #[test]
    fn probation_of_one_learns_at_once() {
        let mut g = SourceGuard::new(0); // clamped to 1
        g.signal(Some(a(SDP)), None);
        assert_eq!(g.check(a(SDP), 1, 1), Verdict::Learned(a(SDP)));
    }

    #[test]
    fn ipv4_mapped_sources_match_ipv4_expectations() {
        let mut g = guard();
        let mapped: SocketAddr = "[::ffff:192.0.2.10]:4000".parse().unwrap();
        let v: Vec<Verdict> = (0..3).map(|i| g.check(mapped, 1, i)).collect();
        assert_eq!(v[2], Verdict::Learned(mapped));
    }
}
