//! Allocation-free RTP building blocks used on the per-packet hot paths:
//! outgoing stream stamping ([`TxStream`]), receive sequence accounting
//! ([`SeqTracker`]), RFC 4733 telephone-event detection ([`DtmfDetector`]),
//! packet writing and relaying ([`relay_packet`]).
//!
//! They are public so that they can be benchmarked and reused, but a switch
//! normally only uses them through [`crate::Leg`].

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rtp_rs::RtpReader;

use crate::g711::{self, Codec};
use crate::sdp::{Direction, Negotiated};
use crate::srtp::SuiteKey;

/// Size of the fixed RTP header we write (no CSRC, no extension).
pub const HEADER_LEN: usize = 12;
/// Largest RTP packet we send or relay (fits an Ethernet MTU).
pub const MAX_PACKET: usize = 1472;
/// RTP clock ticks per 20 ms at 8 kHz.
pub const SAMPLES_PER_FRAME: u32 = 160;
/// Payload type of RFC 3389 comfort noise (never relayed, never recorded).
pub const PT_COMFORT_NOISE: u8 = 13;

/// What the far end of a leg negotiated (from SDP), and where its
/// signalling came from: where and how to send, whom to accept media from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Address from SDP; `None` when on hold with `c=0.0.0.0`. Media is
    /// sent there until the leg learns the peer's real source (symmetric
    /// RTP, see [`crate::source`]), which then replaces it.
    pub addr: Option<SocketAddr>,
    /// The IP the peer's SIP signalling came from (the INVITE's source for
    /// a caller, the registered contact's source for an agent). A leg
    /// learns its source only from this IP or `addr`'s: a softphone behind
    /// NAT writes a private address in SDP but sends from its public one.
    pub signalling_ip: Option<IpAddr>,
    /// G.711 law on this leg.
    pub codec: Codec,
    /// Payload type of that codec on this leg.
    pub payload_type: u8,
    /// telephone-event payload type on this leg, if negotiated.
    pub dtmf_payload_type: Option<u8>,
    /// The far end's direction: we send only if it receives, and expect
    /// packets (inactivity timeout) only if it sends.
    pub direction: Direction,
    /// SRTP on this leg: the suite negotiated and the far end's master key
    /// (from its `a=crypto`), which decrypts what it sends; we encrypt with
    /// the leg's own key ([`crate::Leg::srtp_key`]) in the same suite.
    /// `None`: plain RTP.
    pub srtp: Option<SuiteKey>,
}

impl RemoteMedia {
    /// Plain sendrecv remote with the static payload type of `codec` and no
    /// telephone-event.
    pub fn new(addr: SocketAddr, codec: Codec) -> Self {
        RemoteMedia {
            addr: Some(addr),
            signalling_ip: None,
            codec,
            payload_type: codec.static_payload_type(),
            dtmf_payload_type: None,
            direction: Direction::SendRecv,
            srtp: None,
        }
    }

    /// Same, with a telephone-event payload type.
    pub fn with_dtmf(mut self, pt: u8) -> Self {
        self.dtmf_payload_type = Some(pt);
        self
    }

    /// Same, with SRTP: `key` is the far end's suite and master key.
    pub fn with_srtp(mut self, key: Option<SuiteKey>) -> Self {
        self.srtp = key;
        self
    }

    /// Same, with the IP the peer's signalling came from (`None` when
    /// unknown: the leg then learns its source from the SDP address only).
    pub fn with_signalling(mut self, ip: Option<IpAddr>) -> Self {
        self.signalling_ip = ip;
        self
    }
}

impl From<&Negotiated> for RemoteMedia {
    fn from(n: &Negotiated) -> Self {
        RemoteMedia {
            addr: n.remote,
            signalling_ip: None,
            codec: n.codec,
            payload_type: n.payload_type,
            dtmf_payload_type: n.dtmf_payload_type,
            direction: n.remote_direction,
            srtp: n.srtp.map(|c| c.suite_key()),
        }
    }
}

/// Who is currently feeding an outgoing stream; a change re-bases sequence
/// and timestamp offsets and sets the marker bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nothing sent yet.
    None,
    /// The leg's own playout.
    Playout,
    /// Relay of a bridged peer's packets, keyed by bridge id and the
    /// incoming SSRC.
    Relay {
        /// Bridge generation.
        bridge: u64,
        /// SSRC of the relayed stream.
        ssrc: u32,
    },
}

/// RTP header fields for one outgoing packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// Marker bit.
    pub marker: bool,
}

/// The outgoing RTP stream of one leg: one SSRC for the leg's lifetime,
/// sequence numbers and timestamps continuous across switches between
/// playout and relay (each switch re-bases them on wall-clock elapsed time
/// and sets the marker bit), so the receiving phone sees one coherent stream.
#[derive(Debug, Clone)]
pub struct TxStream {
    ssrc: u32,
    next_seq: u16,
    last_ts: u32,
    last_sent: Option<Instant>,
    source: Source,
    seq_offset: u16,
    ts_offset: u32,
}

impl TxStream {
    /// A stream with random SSRC, initial sequence number and timestamp
    /// (RFC 3550 §5.1).
    pub fn new() -> Self {
        Self::with_ids(rand::random(), rand::random(), rand::random())
    }

    /// A stream with given SSRC, first sequence number and timestamp base.
    pub fn with_ids(ssrc: u32, seq: u16, ts: u32) -> Self {
        TxStream {
            ssrc,
            next_seq: seq,
            last_ts: ts,
            last_sent: None,
            source: Source::None,
            seq_offset: 0,
            ts_offset: 0,
        }
    }

    /// The SSRC of this stream.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Timestamp for a re-based packet: continue from the last one by the
    /// wall-clock time elapsed (at least one frame).
    fn rebase_ts(&self, now: Instant) -> u32 {
        match self.last_sent {
            None => self.last_ts,
            Some(t) => {
                let elapsed = now.saturating_duration_since(t);
                let samples = (elapsed.as_micros() / 125).min(u128::from(u32::MAX / 2)) as u32;
                self.last_ts.wrapping_add(samples.max(SAMPLES_PER_FRAME))
            }
        }
    }

    /// Header for the next 20 ms playout frame. `restart` forces a re-base
    /// (new playlist, or the ticker fell far behind).
    pub fn next_playout(&mut self, now: Instant, restart: bool) -> Header {
        let marker = restart || self.source != Source::Playout;
        let ts = if marker {
            self.rebase_ts(now)
        } else {
            self.last_ts.wrapping_add(SAMPLES_PER_FRAME)
        };
        self.source = Source::Playout;
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.last_ts = ts;
        self.last_sent = Some(now);
        Header { seq, ts, marker }
    }

    /// Header for a relayed packet from `source` carrying `seq`/`ts`: the
    /// incoming spacing (gaps, reordering, DTMF timestamp reuse) is kept,
    /// offset so the stream continues where it was.
    pub fn relay(
        &mut self,
        source: Source,
        seq: u16,
        ts: u32,
        marker: bool,
        now: Instant,
    ) -> Header {
        let mut marker = marker;
        if self.source != source {
            let base_ts = self.rebase_ts(now);
            self.seq_offset = self.next_seq.wrapping_sub(seq);
            self.ts_offset = base_ts.wrapping_sub(ts);
            self.source = source;
            marker = true;
        }
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = ts.wrapping_add(self.ts_offset);
        if (out_seq.wrapping_sub(self.next_seq) as i16) >= 0 {
            self.next_seq = out_seq.wrapping_add(1);
        }
        if (out_ts.wrapping_sub(self.last_ts) as i32) > 0 || self.last_sent.is_none() {
            self.last_ts = out_ts;
        }
        self.last_sent = Some(now);
        Header {
            seq: out_seq,
            ts: out_ts,
            marker,
        }
    }
}

impl Default for TxStream {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes a 12-byte RTP v2 header; returns `None` if `buf` is too short.
#[inline]
pub fn write_header(buf: &mut [u8], pt: u8, h: Header, ssrc: u32) -> Option<()> {
    let b = buf.get_mut(..HEADER_LEN)?;
    b[0] = 0x80;
    b[1] = (pt & 0x7F) | if h.marker { 0x80 } else { 0 };
    b[2..4].copy_from_slice(&h.seq.to_be_bytes());
    b[4..8].copy_from_slice(&h.ts.to_be_bytes());
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
    Some(())
}

/// Builds a playout packet (header + one 160-byte frame) into `buf`;
/// returns its length, or `None` if `buf` is too short.
#[inline]
pub fn build_playout_packet(
    buf: &mut [u8],
    stream: &mut TxStream,
    pt: u8,
    frame: &[u8],
    now: Instant,
    restart: bool,
) -> Option<usize> {
    let len = HEADER_LEN + frame.len();
    let out = buf.get_mut(..len)?;
    let h = stream.next_playout(now, restart);
    write_header(out, pt, h, stream.ssrc)?;
    out.get_mut(HEADER_LEN..)?.copy_from_slice(frame);
    Some(len)
}

/// Receive-side settings of the leg a packet came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InLeg {
    /// Codec negotiated on the incoming leg.
    pub codec: Codec,
    /// Its audio payload type.
    pub payload_type: u8,
    /// Its telephone-event payload type.
    pub dtmf_payload_type: Option<u8>,
}

/// Send-side settings of the leg a packet is relayed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutLeg {
    /// Codec negotiated on the outgoing leg.
    pub codec: Codec,
    /// Its audio payload type.
    pub payload_type: u8,
    /// Its telephone-event payload type (events are dropped without one).
    pub dtmf_payload_type: Option<u8>,
}

/// Relays one parsed incoming packet into `buf` for the other leg: audio
/// payload copied or transcoded (PCMU<->PCMA), telephone-event passed
/// through with the other leg's payload type, everything re-stamped on the
/// outgoing stream. Returns the packet length, or `None` when the packet is
/// not relayed (unknown payload type, comfort noise, no DTMF on the other
/// side, too large).
#[inline]
pub fn relay_packet(
    pkt: &RtpReader<'_>,
    bridge: u64,
    from: InLeg,
    to: OutLeg,
    stream: &mut TxStream,
    buf: &mut [u8],
    now: Instant,
) -> Option<usize> {
    let pt = pkt.payload_type();
    let payload = pkt.payload();
    let len = HEADER_LEN.checked_add(payload.len())?;
    if len > MAX_PACKET {
        return None;
    }
    let out_pt = if pt == from.payload_type {
        to.payload_type
    } else if Some(pt) == from.dtmf_payload_type {
        to.dtmf_payload_type?
    } else {
        return None;
    };
    let out = buf.get_mut(..len)?;
    let body = out.get_mut(HEADER_LEN..)?;
    if pt == from.payload_type {
        g711::transcode_into(from.codec, to.codec, payload, body);
    } else {
        body.copy_from_slice(payload);
    }
    let src = Source::Relay {
        bridge,
        ssrc: pkt.ssrc(),
    };
    let h = stream.relay(
        src,
        pkt.sequence_number().into(),
        pkt.timestamp(),
        pkt.mark(),
        now,
    );
    write_header(out, out_pt, h, stream.ssrc)?;
    Some(len)
}

/// Outcome of [`SeqTracker::on_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqEvent {
    /// The next expected packet (or the first, or a resynchronisation).
    InOrder,
    /// A forward jump: that many packets are missing.
    Gap(u16),
    /// An older sequence number (late, reordered or duplicate).
    Late,
}

/// Receive sequence accounting for loss and reordering.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    ssrc: Option<u32>,
    max_seq: u16,
}

impl SeqTracker {
    /// Jumps larger than this are a stream restart, not loss.
    pub const MAX_GAP: u16 = 3000;

    /// Accounts one packet.
    pub fn on_packet(&mut self, ssrc: u32, seq: u16) -> SeqEvent {
        if self.ssrc != Some(ssrc) {
            self.ssrc = Some(ssrc);
            self.max_seq = seq;
            return SeqEvent::InOrder;
        }
        let delta = seq.wrapping_sub(self.max_seq);
        if delta == 1 {
            self.max_seq = seq;
            SeqEvent::InOrder
        } else if delta == 0 || delta >= 0x8000 {
            if delta != 0 && delta.wrapping_neg() > Self::MAX_GAP {
                self.max_seq = seq;
                return SeqEvent::InOrder;
            }
            SeqEvent::Late
        } else if delta > Self::MAX_GAP {
            self.max_seq = seq;
            SeqEvent::InOrder
        } else {
            self.max_seq = seq;
            SeqEvent::Gap(delta - 1)
        }
    }
}

/// The character of an RFC 4733 DTMF event code (0-9, *, #, A-D), or `None`
/// for other events.
pub fn dtmf_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// RFC 4733 telephone-event detection: reports each event once, however
/// many times its packets (updates, the three end packets, retransmissions)
/// arrive. Events are told apart by RTP timestamp (the event start) and code.
#[derive(Debug, Clone, Default)]
pub struct DtmfDetector {
    recent: [Option<(u32, u8)>; 8],
    next: usize,
}

impl DtmfDetector {
    /// Feeds one telephone-event payload with its RTP timestamp; returns the
    /// digit the first time an event is seen.
    pub fn on_packet(&mut self, ts: u32, payload: &[u8]) -> Option<char> {
        let event = *payload.first()?;
        if payload.len() < 4 {
            return None;
        }
        let digit = dtmf_char(event)?;
        let key = Some((ts, event));
        if self.recent.contains(&key) {
            return None;
        }
        if let Some(slot) = self.recent.get_mut(self.next) {
            *slot = key;
        }
        self.next = (self.next + 1) % 8;
        Some(digit)
    }
}

/// A sequence of prompts each played once, optionally followed by a looped
/// sequence (e.g. greeting once, then hold music forever).
#[derive(Debug, Clone, Default)]
pub struct Playlist {
    once: Vec<std::sync::Arc<crate::Prompt>>,
    looped: Vec<std::sync::Arc<crate::Prompt>>,
}

impl Playlist {
    /// Plays `prompts` once each, then finishes (emits `PlaybackFinished`).
    pub fn once(prompts: Vec<std::sync::Arc<crate::Prompt>>) -> Self {
        Playlist {
            once: prompts,
            looped: Vec::new(),
        }
    }

    /// Plays one prompt once.
    pub fn single(prompt: std::sync::Arc<crate::Prompt>) -> Self {
        Self::once(vec![prompt])
    }

    /// Plays `prompt` in a loop forever.
    pub fn looping(prompt: std::sync::Arc<crate::Prompt>) -> Self {
        Playlist {
            once: Vec::new(),
            looped: vec![prompt],
        }
    }

    /// After the once-items, loops over `prompts` forever (empty prompts are
    /// skipped; if all are empty the playlist finishes instead).
    pub fn then_loop(mut self, prompts: Vec<std::sync::Arc<crate::Prompt>>) -> Self {
        self.looped = prompts;
        self
    }

    /// Whether the playlist never finishes.
    pub fn is_looping(&self) -> bool {
        self.looped.iter().any(|p| p.frame_count() > 0)
    }

    /// Total duration of the once-items.
    pub fn once_duration(&self) -> Duration {
        self.once.iter().map(|p| p.duration()).sum()
    }
}

/// Playback position in a [`Playlist`].
#[derive(Debug, Clone)]
pub struct Player {
    list: Playlist,
    in_loop: bool,
    item: usize,
    frame: usize,
}

impl Player {
    /// Starts at the beginning of `list`.
    pub fn new(list: Playlist) -> Self {
        Player {
            list,
            in_loop: false,
            item: 0,
            frame: 0,
        }
    }

    /// The next 20 ms frame in `codec`, or `None` when the playlist is over.
    #[inline]
    pub fn next_frame(&mut self, codec: Codec) -> Option<&[u8; crate::prompt::FRAME_SAMPLES]> {
        // Bounded: at most one pass over the once-items and two over the
        // looped ones (empty prompts are skipped).
        let bound = self.list.once.len() + 2 * self.list.looped.len() + 2;
        for _ in 0..bound {
            let items = if self.in_loop {
                &self.list.looped
            } else {
                &self.list.once
            };
            match items.get(self.item) {
                Some(p) if self.frame < p.frame_count() => {
                    let i = self.frame;
                    self.frame += 1;
                    // Re-borrow through self.list to tie the lifetime to self.
                    let items = if self.in_loop {
                        &self.list.looped
                    } else {
                        &self.list.once
                    };
                    return items.get(self.item)?.frame(codec, i);
                }
                Some(_) => {
                    self.item += 1;
                    self.frame = 0;
                }
                None => {
                    if !self.list.is_looping() {
                        return None;
                    }
                    self.in_loop = true;
                    self.item = 0;
                    self.frame = 0;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Prompt;
    use std::sync::Arc;

    #[test]
    fn playout_stream_is_continuous() {
        let t0 = Instant::now();
        let mut s = TxStream::with_ids(7, 65535, u32::MAX - 100);
        let h1 = s.next_playout(t0, true);
        assert_eq!((h1.seq, h1.ts, h1.marker), (65535, u32::MAX - 100, true));
        let h2 = s.next_playout(t0 + Duration::from_millis(20), false);
        assert_eq!((h2.seq, h2.ts, h2.marker), (0, 59, false));
        // Restart 1 s later: marker, timestamp advanced by elapsed time.
        let h3 = s.next_playout(t0 + Duration::from_millis(1020), true);
        assert_eq!((h3.seq, h3.marker), (1, true));
        assert_eq!(h3.ts, 59 + 8000);
    }

    #[test]
    fn relay_rebases_and_keeps_spacing() {
        let t0 = Instant::now();
        let mut s = TxStream::with_ids(1, 100, 1000);
        s.next_playout(t0, true); // seq 100 ts 1000
        let src = Source::Relay {
            bridge: 1,
            ssrc: 55,
        };
        let h = s.relay(src, 5000, 777, false, t0 + Duration::from_millis(40));
        assert_eq!((h.seq, h.ts, h.marker), (101, 1000 + 320, true));
        let h = s.relay(src, 5001, 777 + 160, false, t0 + Duration::from_millis(60));
        assert_eq!((h.seq, h.ts, h.marker), (102, 1480, false));
        // Gap preserved, late packet mapped back.
        let h = s.relay(src, 5003, 777 + 480, false, t0 + Duration::from_millis(100));
        assert_eq!(h.seq, 104);
        let h = s.relay(src, 5002, 777 + 320, false, t0 + Duration::from_millis(101));
        assert_eq!((h.seq, h.ts), (103, 1640));
        // Back to playout: continues after the highest seq, marker set.
        let h = s.next_playout(t0 + Duration::from_millis(200), true);
        assert_eq!((h.seq, h.marker), (105, true));
        // Last stamped: ts 1800 at t0+101 ms; 99 ms later.
        assert_eq!(h.ts, 1800 + 8 * 99);
        // New SSRC from the same bridge: re-based again.
        let h = s.relay(
            Source::Relay {
                bridge: 1,
                ssrc: 56,
            },
            1,
            1,
            false,
            t0 + Duration::from_millis(220),
        );
        assert_eq!((h.seq, h.marker), (106, true));
    }

    #[test]
    fn seq_tracker_counts() {
        let mut t = SeqTracker::default();
        assert_eq!(t.on_packet(1, 65534), SeqEvent::InOrder);
        assert_eq!(t.on_packet(1, 65535), SeqEvent::InOrder);
        assert_eq!(t.on_packet(1, 2), SeqEvent::Gap(2));
        assert_eq!(t.on_packet(1, 1), SeqEvent::Late);
        assert_eq!(t.on_packet(1, 2), SeqEvent::Late);
        assert_eq!(t.on_packet(1, 3), SeqEvent::InOrder);
        assert_eq!(t.on_packet(1, 20000), SeqEvent::InOrder);
        assert_eq!(t.on_packet(2, 5), SeqEvent::InOrder);
    }

    #[test]
    fn dtmf_once_per_event() {
        let mut d = DtmfDetector::default();
        let start = [1u8, 10, 0, 160];
        let end = [1u8, 0x80 | 10, 3, 0x20];
        assert_eq!(d.on_packet(1000, &start), Some('1'));
        assert_eq!(d.on_packet(1000, &start), None);
        for _ in 0..3 {
            assert_eq!(d.on_packet(1000, &end), None);
        }
        assert_eq!(d.on_packet(2000, &[11, 0x80, 0, 0]), Some('#'));
        assert_eq!(d.on_packet(1000, &end), None, "late retransmission");
        assert_eq!(d.on_packet(3000, &[16, 0, 0, 0]), None, "flash ignored");
        assert_eq!(d.on_packet(4000, &[1, 0]), None, "short payload");
        assert_eq!(d.on_packet(5000, &[]), None);
        assert_eq!(dtmf_char(15), Some('D'));
        assert_eq!(dtmf_char(10), Some('*'));
    }

    #[test]
    fn player_once_then_loop() {
        let a = Arc::new(Prompt::from_pcm("a", &[1000; 320]));
        let b = Arc::new(Prompt::from_pcm("b", &[-1000; 160]));
        let empty = Arc::new(Prompt::from_pcm("e", &[]));
        let mut p = Player::new(
            Playlist::once(vec![a.clone(), empty.clone()])
                .then_loop(vec![empty.clone(), b.clone()]),
        );
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(p.next_frame(Codec::Pcmu).unwrap()[0]);
        }
        let (x, y) = (g711::ulaw_encode(1000), g711::ulaw_encode(-1000));
        assert_eq!(seen, [x, x, y, y, y, y]);
        let mut p = Player::new(Playlist::once(vec![a.clone()]).then_loop(vec![empty]));
        assert!(p.next_frame(Codec::Pcma).is_some());
        assert!(p.next_frame(Codec::Pcma).is_some());
        assert!(p.next_frame(Codec::Pcma).is_none());
        assert!(Player::new(Playlist::default())
            .next_frame(Codec::Pcmu)
            .is_none());
    }

    #[test]
    fn relay_transcodes_and_rewrites_dtmf() {
        let from = InLeg {
            codec: Codec::Pcmu,
            payload_type: 0,
            dtmf_payload_type: Some(101),
        };
        let to = OutLeg {
            codec: Codec::Pcma,
            payload_type: 8,
            dtmf_payload_type: Some(96),
        };
        let mut s = TxStream::with_ids(9, 0, 0);
        let mut buf = [0u8; MAX_PACKET];
        let now = Instant::now();
        let pkt = rtp_rs::RtpPacketBuilder::new()
            .payload_type(0)
            .ssrc(3)
            .sequence(10.into())
            .timestamp(5)
            .payload(&[0xFF, 0x80, 0x00])
            .build()
            .unwrap();
        let r = RtpReader::new(&pkt).unwrap();
        let n = relay_packet(&r, 1, from, to, &mut s, &mut buf, now).unwrap();
        let out = RtpReader::new(&buf[..n]).unwrap();
        assert_eq!(out.payload_type(), 8);
        assert_eq!(out.ssrc(), 9);
        assert!(out.mark());
        assert_eq!(
            out.payload(),
            &[
                g711::ulaw_to_alaw(0xFF),
                g711::ulaw_to_alaw(0x80),
                g711::ulaw_to_alaw(0)
            ]
        );
        let ev = rtp_rs::RtpPacketBuilder::new()
            .payload_type(101)
            .ssrc(3)
            .sequence(11.into())
            .timestamp(165)
            .payload(&[5, 10, 0, 160])
            .build()
            .unwrap();
        let n = relay_packet(
            &RtpReader::new(&ev).unwrap(),
            1,
            from,
            to,
            &mut s,
            &mut buf,
            now,
        )
        .unwrap();
        let out = RtpReader::new(&buf[..n]).unwrap();
        assert_eq!(
            (out.payload_type(), out.payload()),
            (96, &[5u8, 10, 0, 160][..])
        );
        assert_eq!(u16::from(out.sequence_number()), 1);
        let to_nodtmf = OutLeg {
            dtmf_payload_type: None,
            ..to
        };
        assert!(relay_packet(
            &RtpReader::new(&ev).unwrap(),
            1,
            from,
            to_nodtmf,
            &mut s,
            &mut buf,
            now
        )
        .is_none());
        let cn = rtp_rs::RtpPacketBuilder::new()
            .payload_type(13)
            .payload(&[1])
            .build()
            .unwrap();
        assert!(relay_packet(
            &RtpReader::new(&cn).unwrap(),
            1,
            from,
            to,
            &mut s,
            &mut buf,
            now
        )
        .is_none());
    }

    proptest::proptest! {
        #[test]
        fn random_datagrams_never_panic_the_packet_path(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            transcode in proptest::bool::ANY,
        ) {
            let now = Instant::now();
            let mut s = TxStream::with_ids(1, 2, 3);
            let mut seq = SeqTracker::default();
            let mut dtmf = DtmfDetector::default();
            let mut buf = [0u8; MAX_PACKET];
            let from = InLeg { codec: Codec::Pcmu, payload_type: 0, dtmf_payload_type: Some(101) };
            let to = OutLeg {
                codec: if transcode { Codec::Pcma } else { Codec::Pcmu },
                payload_type: 8,
                dtmf_payload_type: Some(96),
            };
            if let Ok(r) = RtpReader::new(&data) {
                let _ = seq.on_packet(r.ssrc(), r.sequence_number().into());
                let _ = dtmf.on_packet(r.timestamp(), r.payload());
                if let Some(n) = relay_packet(&r, 1, from, to, &mut s, &mut buf, now) {
                    let out = RtpReader::new(&buf[..n]);
                    proptest::prop_assert!(out.is_ok());
                }
            }
            // Short output buffers are refused, not overrun.
            if let Ok(r) = RtpReader::new(&data) {
                let _ = relay_packet(&r, 1, from, to, &mut s, &mut buf[..8], now);
            }
        }
    }
}
