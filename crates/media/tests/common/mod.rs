//! Shared helpers for the media integration tests: loopback peers, RTP
//! packet crafting and bounded waits.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use permanence_media::{Leg, MediaConfig, MediaEngine, MediaEvent, Prompt, RemoteMedia};
use rtp_rs::{RtpPacketBuilder, RtpReader};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Generous bound for anything expected to happen "soon".
pub const SOON: Duration = Duration::from_secs(5);

/// An engine on 127.0.0.1. The range is wide and shared by the tests: the
/// allocator skips ports that are already bound, so concurrent tests (and
/// other processes) never collide.
pub fn engine() -> MediaEngine {
    engine_with_timeout(Duration::from_secs(30))
}

/// Same, with a given RTP inactivity timeout.
pub fn engine_with_timeout(rtp_timeout: Duration) -> MediaEngine {
    let mut cfg = MediaConfig::new("127.0.0.1".parse().unwrap(), 31000, 39999);
    cfg.rtp_timeout = rtp_timeout;
    MediaEngine::new(cfg).unwrap()
}

/// A peer socket on an OS-chosen loopback port.
pub async fn peer() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// A socket on another loopback address (`127.0.0.3`: an attacker, or a
/// NAT's new public address); Linux routes all of 127/8 to `lo`.
pub async fn peer_at(ip: &str) -> UdpSocket {
    UdpSocket::bind((ip, 0)).await.unwrap()
}

/// Packets a new source sends before a leg accepts its media (the default
/// probation); the first `PROBATION - 1` of them are dropped.
pub const PROBATION: u16 = permanence_media::source::DEFAULT_PROBATION as u16;

/// Has `from` learnt by the leg at `to` ahead of a stream: sends the
/// `PROBATION - 1` packets (SSRC `ssrc`, payload type `pt`) that precede
/// sequence number `next_seq`. The leg drops them; the stream's first
/// packet then completes the probation and is the first one processed.
pub async fn probation_prefix(from: &UdpSocket, to: SocketAddr, pt: u8, ssrc: u32, next_seq: u16) {
    for k in (1..PROBATION).rev() {
        let seq = next_seq.wrapping_sub(k);
        from.send_to(&rtp(pt, seq, 0, ssrc, false, &[0xFF; 160]), to)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
}

/// The loopback address of a leg (its advertised address is 127.0.0.1 here).
pub fn leg_addr(leg: &Leg) -> SocketAddr {
    leg.local_addr()
}

/// A received RTP packet, owned.
#[derive(Debug, Clone)]
pub struct Pkt {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
    pub from: SocketAddr,
}

/// Receives one RTP packet (skipping non-RTP), or `None` after `wait`.
pub async fn recv_pkt(sock: &UdpSocket, wait: Duration) -> Option<Pkt> {
    let mut buf = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (n, from) = timeout(left, sock.recv_from(&mut buf)).await.ok()?.ok()?;
        if let Ok(r) = RtpReader::new(&buf[..n]) {
            return Some(Pkt {
                pt: r.payload_type(),
                marker: r.mark(),
                seq: r.sequence_number().into(),
                ts: r.timestamp(),
                ssrc: r.ssrc(),
                payload: r.payload().to_vec(),
                from,
            });
        }
    }
}

/// Receives `n` RTP packets, each within `SOON`; panics with context if not.
pub async fn recv_n(sock: &UdpSocket, n: usize) -> Vec<Pkt> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        match recv_pkt(sock, SOON).await {
            Some(p) => v.push(p),
            None => panic!("only {i} of {n} packets received"),
        }
    }
    v
}

/// Builds an RTP packet.
pub fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    RtpPacketBuilder::new()
        .payload_type(pt)
        .sequence(seq.into())
        .timestamp(ts)
        .ssrc(ssrc)
        .marked(marker)
        .payload(payload)
        .build()
        .unwrap()
}

/// An RFC 4733 telephone-event payload.
pub fn dtmf_payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
}

/// Waits for the next event matching `pred`, skipping others; `None` after
/// `wait`.
pub async fn wait_event(
    rx: &mut mpsc::Receiver<MediaEvent>,
    wait: Duration,
    pred: impl Fn(&MediaEvent) -> bool,
) -> Option<MediaEvent> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = timeout(left, rx.recv()).await.ok()??;
        if pred(&ev) {
            return Some(ev);
        }
    }
}

/// Collects every event arriving within `wait`.
pub async fn drain_events(rx: &mut mpsc::Receiver<MediaEvent>, wait: Duration) -> Vec<MediaEvent> {
    let mut v = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match timeout(left, rx.recv()).await {
            Ok(Some(ev)) => v.push(ev),
            _ => return v,
        }
    }
}

/// A sine tone prompt.
pub fn tone(name: &str, hz: f64, ms: usize, amplitude: f64) -> Arc<Prompt> {
    let n = ms * 8;
    let pcm: Vec<i16> = (0..n)
        .map(|i| ((i as f64 * hz * 2.0 * std::f64::consts::PI / 8000.0).sin() * amplitude) as i16)
        .collect();
    Arc::new(Prompt::from_pcm(name, &pcm))
}

/// 20 ms of a sine tone, as linear PCM.
pub fn sine_frame(hz: f64, frame_index: usize, amplitude: f64) -> [i16; 160] {
    let mut f = [0i16; 160];
    for (i, s) in f.iter_mut().enumerate() {
        let t = (frame_index * 160 + i) as f64;
        *s = ((t * hz * 2.0 * std::f64::consts::PI / 8000.0).sin() * amplitude) as i16;
    }
    f
}

/// RMS of linear samples.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Remote media pointing at `sock` with PCMU/0 and telephone-event/101.
pub fn remote_pcmu(sock: &UdpSocket) -> RemoteMedia {
    RemoteMedia::new(sock.local_addr().unwrap(), permanence_media::Codec::Pcmu).with_dtmf(101)
}

/// Checks that packets form one coherent 20 ms stream: same SSRC and payload
/// type, sequence +1 and timestamp +160 each, marker only on the first.
pub fn assert_coherent(pkts: &[Pkt], pt: u8) {
    assert!(!pkts.is_empty());
    let first = &pkts[0];
    assert!(first.marker, "marker on the first packet");
    for w in pkts.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert_eq!(b.ssrc, first.ssrc, "constant SSRC");
        assert_eq!(b.pt, pt, "payload type");
        assert_eq!(b.seq, a.seq.wrapping_add(1), "sequence +1");
        assert_eq!(b.ts, a.ts.wrapping_add(160), "timestamp +160");
        assert!(!b.marker, "marker only on the first packet (seq {})", b.seq);
        assert_eq!(b.payload.len(), 160);
    }
}
