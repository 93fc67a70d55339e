//! Leg behaviour: DTMF detection, strict source learning (probation, lock,
//! foreign sources, re-learning, NAT rebinding, comfort noise), inactivity
//! timeout, random port allocation, garbage resistance, recording.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use permanence_media::{
    g711, Codec, MediaConfig, MediaEngine, MediaError, MediaEvent, Playlist, RecordingEnd,
    RemoteMedia,
};
use proptest::prelude::*;
use tokio::net::UdpSocket;

fn dtmf_digits(evs: &[MediaEvent]) -> Vec<char> {
    evs.iter()
        .filter_map(|e| match e {
            MediaEvent::Dtmf(d) => Some(*d),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_digit_reported_exactly_once() {
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let p = peer().await;
    leg.set_remote(remote_pcmu(&p)).unwrap();
    let to = leg.local_addr();
    let mut seq = 500u16;
    let mut send = |pt: u8, ts: u32, payload: [u8; 4], marker: bool| {
        seq = seq.wrapping_add(1);
        rtp(pt, seq, ts, 77, marker, &payload)
    };
    // Digit "1": start (marker), two updates, three end packets, then a
    // late retransmission of the end packet.
    let mut pkts = vec![send(101, 8000, dtmf_payload(1, false, 160), true)];
    for d in [320, 480] {
        pkts.push(send(101, 8000, dtmf_payload(1, false, d), false));
    }
    for _ in 0..3 {
        pkts.push(send(101, 8000, dtmf_payload(1, true, 800), false));
    }
    // Some audio, then digit "#" whose start packets were lost (only end
    // packets arrive), then the old "1" end packet again.
    pkts.push(send(0, 9000, [0xFF; 4], false));
    for _ in 0..3 {
        pkts.push(send(101, 16000, dtmf_payload(11, true, 800), false));
    }
    pkts.push(send(101, 8000, dtmf_payload(1, true, 800), false));
    // Then "1" again as a new key press (new timestamp).
    pkts.push(send(101, 24000, dtmf_payload(1, false, 160), true));
    pkts.push(send(101, 24000, dtmf_payload(1, true, 400), false));
    probation_prefix(&p, to, 0, 77, 501).await;
    for pkt in &pkts {
        p.send_to(pkt, to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut evs = Vec::new();
    while dtmf_digits(&evs).len() < 3 {
        match wait_event(&mut ev, SOON, |_| true).await {
            Some(e) => evs.push(e),
            None => break,
        }
    }
    evs.extend(drain_events(&mut ev, Duration::from_millis(200)).await);
    assert_eq!(dtmf_digits(&evs), ['1', '#', '1'], "{evs:?}");
    assert_eq!(leg.stats().dtmf, 3);
    assert_eq!(leg.stats().packets_in, pkts.len() as u64);
}

/// Sends `n` PCMU packets of `fill` from `from` to `to` (SSRC `ssrc`,
/// sequence numbers from `seq`), 2 ms apart.
async fn stream(from: &UdpSocket, to: SocketAddr, ssrc: u32, seq: u16, n: u16, fill: u8) {
    for i in 0..n {
        let s = seq.wrapping_add(i);
        from.send_to(
            &rtp(0, s, 160 * u32::from(s), ssrc, false, &[fill; 160]),
            to,
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Whether any packet arrives on `sock` within `wait`.
async fn receives_anything(sock: &UdpSocket, wait: Duration) -> bool {
    let mut buf = [0u8; 2048];
    tokio::time::timeout(wait, sock.recv_from(&mut buf))
        .await
        .is_ok()
}

fn latched(evs: &[MediaEvent]) -> Vec<SocketAddr> {
    evs.iter()
        .filter_map(|e| match e {
            MediaEvent::Latched(a) => Some(*a),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learns_the_actual_source_port_after_probation() {
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let sdp_peer = peer().await; // what SDP said
    let nat_peer = peer().await; // where packets really come from (same IP)
    leg.set_remote(remote_pcmu(&sdp_peer)).unwrap();
    leg.play(Playlist::looping(tone("t", 440.0, 1000, 6000.0)))
        .unwrap();
    // Before learning, media goes to the SDP address.
    assert!(recv_pkt(&sdp_peer, SOON).await.is_some());
    // Probation: the first packets are dropped and learn nothing.
    stream(&nat_peer, leg.local_addr(), 5, 1, PROBATION - 1, 0xFF).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(latched(&drain_events(&mut ev, Duration::from_millis(50)).await).is_empty());
    assert_eq!(leg.stats().probation, u64::from(PROBATION - 1));
    assert_eq!(leg.stats().packets_in, 0);
    // The next one in sequence completes it.
    stream(&nat_peer, leg.local_addr(), 5, PROBATION, 1, 0xFF).await;
    let got = wait_event(&mut ev, SOON, |e| matches!(e, MediaEvent::Latched(_))).await;
    assert_eq!(
        got,
        Some(MediaEvent::Latched(nat_peer.local_addr().unwrap()))
    );
    assert_eq!(leg.stats().packets_in, 1);
    // Now the NATed address receives the stream.
    let got = recv_n(&nat_peer, 5).await;
    assert!(got.iter().all(|p| p.from == leg.local_addr()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_source_is_kept_whatever_the_silence_and_foreign_sources_get_nothing() {
    let engine = engine();
    let (a, mut a_ev) = engine.open_leg().unwrap();
    let (b, _b_ev) = engine.open_leg().unwrap();
    let (caller, agent) = (peer().await, peer().await);
    a.set_remote(remote_pcmu(&caller)).unwrap();
    b.set_remote(remote_pcmu(&agent)).unwrap();
    permanence_media::bridge(&a, &b).unwrap();
    stream(&caller, a.local_addr(), 1, 100, 10, 0x11).await;
    assert!(
        wait_event(&mut a_ev, SOON, |e| matches!(e, MediaEvent::Latched(_)))
            .await
            .is_some()
    );
    while recv_pkt(&agent, Duration::from_millis(100)).await.is_some() {}
    // The caller is silent well beyond the old 500 ms re-latch delay; a
    // third party on another address, and one on the caller's own IP,
    // stream audio at leg A in sequence.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let outsider = peer_at("127.0.0.3").await;
    let neighbour = peer().await;
    stream(&outsider, a.local_addr(), 0xBAD, 1, 40, 0x66).await;
    stream(&neighbour, a.local_addr(), 0xBAD2, 1, 40, 0x67).await;
    // The agent keeps talking: it must reach the caller only.
    stream(&agent, b.local_addr(), 2, 1, 20, 0x22).await;
    let evs = drain_events(&mut a_ev, Duration::from_millis(200)).await;
    assert!(latched(&evs).is_empty(), "{evs:?}");
    assert_eq!(a.stats().foreign, 80);
    assert!(!receives_anything(&outsider, Duration::from_millis(200)).await);
    assert!(!receives_anything(&neighbour, Duration::from_millis(1)).await);
    // Nothing of theirs reached the agent.
    assert!(recv_pkt(&agent, Duration::from_millis(200)).await.is_none());
    let to_caller = recv_n(&caller, 17).await;
    assert!(to_caller.iter().all(|p| p.payload == [0x22; 160]));
    // The caller resumes (same stream, further on): heard at once.
    stream(&caller, a.local_addr(), 1, 400, 5, 0x11).await;
    let got = recv_n(&agent, 5).await;
    assert!(got.iter().all(|p| p.payload == [0x11; 160]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spraying_before_the_remote_is_set_learns_nothing() {
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let attacker = peer_at("127.0.0.3").await;
    let caller = peer().await;
    // Sprayed before the SDP is known: not even looked at.
    stream(&attacker, leg.local_addr(), 0xBAD, 1, 10, 0x66).await;
    leg.set_remote(remote_pcmu(&caller)).unwrap();
    leg.play(Playlist::looping(tone("t", 440.0, 1000, 6000.0)))
        .unwrap();
    // And during: it is not the expected peer, whatever it sends first.
    stream(&attacker, leg.local_addr(), 0xBAD, 11, 10, 0x66).await;
    stream(&caller, leg.local_addr(), 7, 1, PROBATION, 0x11).await;
    let got = wait_event(&mut ev, SOON, |e| matches!(e, MediaEvent::Latched(_))).await;
    assert_eq!(got, Some(MediaEvent::Latched(caller.local_addr().unwrap())));
    stream(&attacker, leg.local_addr(), 0xBAD, 21, 10, 0x66).await;
    assert!(!receives_anything(&attacker, Duration::from_millis(300)).await);
    assert!(recv_pkt(&caller, SOON).await.is_some());
    let s = leg.stats();
    assert_eq!((s.foreign, s.garbage), (20, 10), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natted_peer_is_learnt_from_its_signalling_ip_only() {
    let engine = engine();
    // The softphone writes a private address in SDP (here 127.0.0.5, where
    // nobody listens) and sends from its public one (127.0.0.1).
    let phone = peer().await;
    let private: SocketAddr = "127.0.0.5:4000".parse().unwrap();
    let (leg, mut ev) = engine.open_leg().unwrap();
    leg.set_remote(
        RemoteMedia::new(private, Codec::Pcmu).with_signalling(Some("127.0.0.1".parse().unwrap())),
    )
    .unwrap();
    stream(&phone, leg.local_addr(), 3, 1, PROBATION, 0x11).await;
    let got = wait_event(&mut ev, SOON, |e| matches!(e, MediaEvent::Latched(_))).await;
    assert_eq!(got, Some(MediaEvent::Latched(phone.local_addr().unwrap())));
    // Without the signalling source it is not the expected peer.
    let (leg2, mut ev2) = engine.open_leg().unwrap();
    leg2.set_remote(RemoteMedia::new(private, Codec::Pcmu))
        .unwrap();
    stream(&phone, leg2.local_addr(), 3, 1, 10, 0x11).await;
    let evs = drain_events(&mut ev2, Duration::from_millis(200)).await;
    assert!(latched(&evs).is_empty(), "{evs:?}");
    assert_eq!(leg2.stats().foreign, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relearns_only_on_a_signalled_change_of_peer() {
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let first = peer().await;
    let second = peer().await;
    let remote = remote_pcmu(&first);
    leg.set_remote(remote).unwrap();
    leg.play(Playlist::looping(tone("t", 440.0, 1000, 6000.0)))
        .unwrap();
    stream(&first, leg.local_addr(), 1, 1, PROBATION, 0x11).await;
    assert!(
        wait_event(&mut ev, SOON, |e| matches!(e, MediaEvent::Latched(_)))
            .await
            .is_some()
    );
    // re-INVITE naming the same peer (hold/resume, refresh): lock kept.
    let mut same = remote;
    same.direction = permanence_media::Direction::SendRecv;
    leg.set_remote(same).unwrap();
    stream(&second, leg.local_addr(), 2, 1, 10, 0x22).await;
    let evs = drain_events(&mut ev, Duration::from_millis(200)).await;
    assert!(latched(&evs).is_empty(), "{evs:?}");
    assert_eq!(leg.stats().foreign, 10);
    // re-INVITE moving the media to `second`: learnt again, sent there.
    leg.set_remote(remote_pcmu(&second)).unwrap();
    assert!(recv_pkt(&second, SOON).await.is_some(), "SDP address first");
    stream(&second, leg.local_addr(), 2, 11, PROBATION, 0x22).await;
    let got = wait_event(&mut ev, SOON, |e| matches!(e, MediaEvent::Latched(_))).await;
    assert_eq!(got, Some(MediaEvent::Latched(second.local_addr().unwrap())));
    // The old peer is foreign now.
    let before = leg.stats().foreign;
    stream(&first, leg.local_addr(), 1, 10, 5, 0x11).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(leg.stats().foreign, before + 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_with_a_zero_address_stops_sending_and_keeps_the_source() {
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let sdp_peer = peer().await;
    let nat_peer = peer().await;
    let remote = remote_pcmu(&sdp_peer);
    leg.set_remote(remote).unwrap();
    leg.play(Playlist::looping(tone("t", 440.0, 1000, 6000.0)))
        .unwrap();
    stream(&nat_peer, leg.local_addr(), 1, 1, PROBATION, 0x11).await;
    assert!(
        wait_event(&mut ev, SOON, |e| matches!(e, MediaEvent::Latched(_)))
            .await
            .is_some()
    );
    assert!(recv_pkt(&nat_peer, SOON).await.is_some());
    // Held with c=0.0.0.0: nothing is sent, the learnt source stays.
    let mut held = remote;
    held.addr = None;
    leg.set_remote(held).unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    while recv_pkt(&nat_peer, Duration::from_millis(1))
        .await
        .is_some()
    {}
    assert!(recv_pkt(&nat_peer, Duration::from_millis(200))
        .await
        .is_none());
    stream(&nat_peer, leg.local_addr(), 1, 10, 3, 0x11).await;
    // Resumed at the same address: straight back to the learnt source,
    // no new probation.
    while recv_pkt(&sdp_peer, Duration::from_millis(1))
        .await
        .is_some()
    {}
    leg.set_remote(remote).unwrap();
    assert!(recv_pkt(&nat_peer, SOON).await.is_some());
    assert!(recv_pkt(&sdp_peer, Duration::from_millis(100))
        .await
        .is_none());
    let evs = drain_events(&mut ev, Duration::from_millis(100)).await;
    assert!(latched(&evs).is_empty(), "{evs:?}");
    let s = leg.stats();
    assert_eq!(
        (s.foreign, s.probation),
        (0, u64::from(PROBATION - 1)),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_rebinding_continuing_the_stream_is_followed() {
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let phone = peer().await;
    leg.set_remote(remote_pcmu(&phone)).unwrap();
    leg.play(Playlist::looping(tone("t", 440.0, 1000, 6000.0)))
        .unwrap();
    stream(&phone, leg.local_addr(), 0x5151, 1000, 10, 0x11).await;
    assert!(
        wait_event(&mut ev, SOON, |e| matches!(e, MediaEvent::Latched(_)))
            .await
            .is_some()
    );
    // The NAT gives the phone a new public address and port; its stream
    // goes on (same SSRC, sequence a little further: some packets lost).
    let rebound = peer_at("127.0.0.2").await;
    stream(&rebound, leg.local_addr(), 0x5151, 1014, PROBATION, 0x11).await;
    let got = wait_event(&mut ev, SOON, |e| matches!(e, MediaEvent::Latched(_))).await;
    assert_eq!(
        got,
        Some(MediaEvent::Latched(rebound.local_addr().unwrap()))
    );
    assert!(recv_pkt(&rebound, SOON).await.is_some(), "media follows");
    // Another stream from there (another SSRC) would not have been.
    let (leg2, mut ev2) = engine.open_leg().unwrap();
    leg2.set_remote(remote_pcmu(&phone)).unwrap();
    stream(&phone, leg2.local_addr(), 0x5151, 1000, 10, 0x11).await;
    let other = peer_at("127.0.0.2").await;
    stream(&other, leg2.local_addr(), 0x5152, 1014, 10, 0x11).await;
    let evs = drain_events(&mut ev2, Duration::from_millis(200)).await;
    assert_eq!(latched(&evs), [phone.local_addr().unwrap()]);
    assert_eq!(leg2.stats().foreign, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comfort_noise_keeps_the_source_and_the_leg_alive() {
    let engine = engine_with_timeout(Duration::from_millis(400));
    let (a, mut a_ev) = engine.open_leg().unwrap();
    let (b, _b_ev) = engine.open_leg().unwrap();
    let (caller, agent) = (peer().await, peer().await);
    a.set_remote(remote_pcmu(&caller)).unwrap();
    b.set_remote(remote_pcmu(&agent)).unwrap();
    permanence_media::bridge(&a, &b).unwrap();
    stream(&caller, a.local_addr(), 1, 1, 5, 0x11).await;
    assert!(
        wait_event(&mut a_ev, SOON, |e| matches!(e, MediaEvent::Latched(_)))
            .await
            .is_some()
    );
    while recv_pkt(&agent, Duration::from_millis(100)).await.is_some() {}
    // The caller stops talking and sends comfort noise (PT 13) every
    // 100 ms for 1 s (more than twice the timeout).
    for i in 0..10u16 {
        caller
            .send_to(&rtp(13, 6 + i, 0, 1, false, &[40]), a.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let evs = drain_events(&mut a_ev, Duration::from_millis(10)).await;
    assert!(
        !evs.iter()
            .any(|e| matches!(e, MediaEvent::RtpTimeout | MediaEvent::NoRtp)),
        "{evs:?}"
    );
    // Comfort noise is not relayed, and counts as received.
    assert!(recv_pkt(&agent, Duration::from_millis(50)).await.is_none());
    let s = a.stats();
    assert_eq!((s.packets_in, s.lost, s.garbage), (13, 0, 0), "{s:?}");
    // It keeps the source: a new source is still refused.
    let other = peer().await;
    stream(&other, a.local_addr(), 9, 1, 5, 0x66).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.stats().foreign, 5);
}

#[test]
fn ports_are_random_and_a_released_port_is_not_reused_at_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = MediaConfig::new("127.0.0.1".parse().unwrap(), 40400, 40599);
        let engine = MediaEngine::new(cfg).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut last = None;
        let mut steps = std::collections::HashSet::new();
        for _ in 0..60 {
            let (leg, _ev) = engine.open_leg().unwrap();
            let port = leg.port();
            assert_eq!(port % 2, 0);
            assert!((40400..=40599).contains(&port));
            assert_ne!(Some(port), last, "released port handed out again at once");
            if let Some(l) = last {
                steps.insert(port.wrapping_sub(l));
            }
            seen.insert(port);
            last = Some(port);
            leg.close().await;
        }
        assert!(seen.len() > 30, "{} distinct ports of 100", seen.len());
        assert!(steps.len() > 5, "not a fixed stride: {steps:?}");
        assert_eq!(engine.ports_in_use(), 0);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rtp_at_all_is_reported() {
    let engine = engine_with_timeout(Duration::from_millis(300));
    let (leg, mut ev) = engine.open_leg().unwrap();
    let p = peer().await;
    leg.set_remote(remote_pcmu(&p)).unwrap();
    let got = wait_event(&mut ev, SOON, |e| {
        matches!(e, MediaEvent::NoRtp | MediaEvent::RtpTimeout)
    })
    .await;
    assert_eq!(got, Some(MediaEvent::NoRtp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_stopping_is_reported_once_and_rearmed_by_new_packets() {
    let engine = engine_with_timeout(Duration::from_millis(300));
    let (leg, mut ev) = engine.open_leg().unwrap();
    let p = peer().await;
    leg.set_remote(remote_pcmu(&p)).unwrap();
    // 0.5 s of packets (longer than the timeout): no timeout meanwhile.
    for i in 0..25u16 {
        p.send_to(
            &rtp(0, i, 160 * i as u32, 3, i == 0, &[0xFF; 160]),
            leg.local_addr(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let early = drain_events(&mut ev, Duration::from_millis(50)).await;
    assert!(
        !early
            .iter()
            .any(|e| matches!(e, MediaEvent::RtpTimeout | MediaEvent::NoRtp)),
        "{early:?}"
    );
    let got = wait_event(&mut ev, SOON, |e| {
        matches!(e, MediaEvent::NoRtp | MediaEvent::RtpTimeout)
    })
    .await;
    assert_eq!(got, Some(MediaEvent::RtpTimeout));
    // Reported once, not repeatedly.
    let again = drain_events(&mut ev, Duration::from_millis(700)).await;
    assert!(
        !again.iter().any(|e| matches!(e, MediaEvent::RtpTimeout)),
        "{again:?}"
    );
    // RTP resumes then stops again: reported again.
    p.send_to(&rtp(0, 30, 8000, 3, false, &[0xFF; 160]), leg.local_addr())
        .await
        .unwrap();
    let got = wait_event(&mut ev, SOON, |e| matches!(e, MediaEvent::RtpTimeout)).await;
    assert_eq!(got, Some(MediaEvent::RtpTimeout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_remote_is_not_timed_out() {
    let engine = engine_with_timeout(Duration::from_millis(200));
    let (leg, mut ev) = engine.open_leg().unwrap();
    let p = peer().await;
    let mut r = remote_pcmu(&p);
    r.direction = permanence_media::Direction::RecvOnly; // far end sends nothing
    leg.set_remote(r).unwrap();
    let evs = drain_events(&mut ev, Duration::from_millis(700)).await;
    assert!(evs.is_empty(), "{evs:?}");
}

/// An even port whose range [p, p + 1] is free right now.
fn free_even_port() -> u16 {
    for _ in 0..200 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        if port & 1 == 0 && port < 65534 {
            return port;
        }
    }
    panic!("no even ephemeral port found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_are_even_distinct_and_released_on_close_and_drop() {
    // A test-specific range; ports taken by others are skipped.
    let cfg = MediaConfig::new("127.0.0.1".parse().unwrap(), 40001, 40200);
    let engine = MediaEngine::new(cfg).unwrap();
    for round in 0..3 {
        let mut legs = Vec::new();
        for _ in 0..40 {
            let (leg, _ev) = engine.open_leg().unwrap();
            assert_eq!(leg.port() % 2, 0, "even RTP port");
            assert!((40002..=40200).contains(&leg.port()));
            legs.push(leg);
        }
        assert_eq!(engine.ports_in_use(), 40);
        let mut ports: Vec<u16> = legs.iter().map(|l| l.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 40, "distinct ports");
        if round == 0 {
            for leg in legs {
                leg.close().await;
            }
        } else {
            drop(legs); // Drop also frees the ports, asynchronously.
            for _ in 0..100 {
                if engine.ports_in_use() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert_eq!(engine.ports_in_use(), 0, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_ports_are_skipped_and_exhaustion_is_reported() {
    // Find a free even port p and make a range of two even ports [p, p+2];
    // another process (here: a plain socket) holds p.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let p = free_even_port();
        let Ok(blocker) = std::net::UdpSocket::bind(("127.0.0.1", p)) else {
            continue;
        };
        let cfg = MediaConfig::new("127.0.0.1".parse().unwrap(), p, p + 2);
        let engine = MediaEngine::new(cfg).unwrap();
        match engine.open_leg() {
            Ok((leg, _ev)) => {
                assert_eq!(leg.port(), p + 2, "busy port skipped");
                let err = engine.open_leg().unwrap_err();
                assert!(matches!(err, MediaError::PortsExhausted { .. }), "{err}");
                drop(blocker);
                let (leg2, _ev2) = engine.open_leg().unwrap();
                assert_eq!(leg2.port(), p);
                leg.close().await;
                leg2.close().await;
                assert_eq!(engine.ports_in_use(), 0);
                return;
            }
            // p + 2 was taken by someone else meanwhile: try another range.
            Err(MediaError::PortsExhausted { .. }) if attempt < 20 => continue,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn config_is_validated_and_runtime_is_required() {
    let ip = "127.0.0.1".parse().unwrap();
    assert!(MediaEngine::new(MediaConfig::new(ip, 5000, 4000)).is_err());
    assert!(MediaEngine::new(MediaConfig::new(ip, 5001, 5001)).is_err());
    assert!(MediaEngine::new(MediaConfig::new(ip, 0, 10)).is_err());
    let e = MediaEngine::new(MediaConfig::new(ip, 41000, 41010)).unwrap();
    assert!(matches!(e.open_leg(), Err(MediaError::NoRuntime)));
}

fn garbage_datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        // Looks like RTP v2 with random flags (padding, extension, CSRC
        // count), payload types 0/101, and random tails.
        (
            any::<u8>(),
            prop_oneof![Just(0u8), Just(101u8), Just(0x80u8), any::<u8>()],
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(b0, pt, tail)| {
                let mut v = vec![0x80 | (b0 & 0x3F), pt, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
                v.extend(tail);
                v
            }),
    ]
}

#[test]
fn garbage_never_crashes_a_leg() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = engine();
        let (a, mut a_ev) = engine.open_leg().unwrap();
        let (b, _b_ev) = engine.open_leg().unwrap();
        let (pa, pb) = (peer().await, peer().await);
        a.set_remote(remote_pcmu(&pa)).unwrap();
        b.set_remote(RemoteMedia::new(pb.local_addr().unwrap(), Codec::Pcma).with_dtmf(96))
            .unwrap();
        permanence_media::bridge(&a, &b).unwrap();
        a.record(
            std::env::temp_dir().join(format!("perm-garbage-{}.wav", std::process::id())),
            Duration::from_secs(5),
        )
        .unwrap();

        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 1500,
            failure_persistence: None,
            ..Default::default()
        });
        let strategy = garbage_datagram();
        let mut sent = 0u64;
        for _ in 0..1500 {
            let tree = strategy.new_tree(&mut runner).unwrap();
            let d = proptest::strategy::ValueTree::current(&tree);
            pa.send_to(&d, a.local_addr()).await.unwrap();
            sent += 1;
            if sent & 127 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        // Oversized datagram too.
        pa.send_to(&vec![0x80u8; 4000], a.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = a.stats();
        assert!(s.garbage > 100, "{s:?}");
        // The leg still works: a real stream is learnt, a DTMF press is
        // detected and audio relayed.
        while recv_pkt(&pb, Duration::from_millis(50)).await.is_some() {}
        let _ = drain_events(&mut a_ev, Duration::from_millis(50)).await;
        probation_prefix(&pa, a.local_addr(), 0, 4242, 60000).await;
        pa.send_to(
            &rtp(
                101,
                60000,
                1_000_000,
                4242,
                true,
                &dtmf_payload(9, false, 160),
            ),
            a.local_addr(),
        )
        .await
        .unwrap();
        let d = wait_event(&mut a_ev, SOON, |e| matches!(e, MediaEvent::Dtmf(_))).await;
        assert_eq!(d, Some(MediaEvent::Dtmf('9')));
        pa.send_to(
            &rtp(0, 60001, 1_000_160, 4242, false, &[0x00; 160]),
            a.local_addr(),
        )
        .await
        .unwrap();
        let mut got = None;
        for _ in 0..10 {
            match recv_pkt(&pb, SOON).await {
                Some(p) if p.pt == 8 => {
                    got = Some(p);
                    break;
                }
                Some(_) => continue,
                None => break,
            }
        }
        let got = got.expect("audio still relayed after garbage");
        assert_eq!(got.payload, vec![g711::ulaw_to_alaw(0x00); 160]);
        a.close().await;
        b.close().await;
        assert_eq!(engine.ports_in_use(), 0);
        let _ = std::fs::remove_file(
            std::env::temp_dir().join(format!("perm-garbage-{}.wav", std::process::id())),
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_writes_decoded_far_end_audio() {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("perm-rec-{}-a.wav", std::process::id()));
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let p = peer().await;
    leg.set_remote(remote_pcmu(&p)).unwrap();
    leg.record(&path, Duration::from_secs(60)).unwrap();
    probation_prefix(&p, leg.local_addr(), 0, 1, 0).await;
    let mut expected = Vec::new();
    for i in 0..30usize {
        let pcm = sine_frame(600.0, i, 8000.0);
        let mut payload = [0u8; 160];
        g711::encode_into(Codec::Pcmu, &pcm, &mut payload);
        expected.extend(payload.iter().map(|&b| g711::ulaw_decode(b)));
        p.send_to(
            &rtp(0, i as u16, 160 * i as u32, 1, i == 0, &payload),
            leg.local_addr(),
        )
        .await
        .unwrap();
        // DTMF packets are not recorded.
        if i == 10 {
            p.send_to(
                &rtp(101, 1000, 0, 1, true, &dtmf_payload(2, false, 160)),
                leg.local_addr(),
            )
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Let the leg task consume them before stopping.
    for _ in 0..100 {
        if leg.stats().packets_in >= 31 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    leg.stop_recording().unwrap();
    let done = wait_event(&mut ev, SOON, |e| {
        matches!(
            e,
            MediaEvent::RecordingFinished { .. } | MediaEvent::RecordingFailed { .. }
        )
    })
    .await;
    assert_eq!(
        done,
        Some(MediaEvent::RecordingFinished {
            path: path.clone(),
            duration: Duration::from_millis(600),
            reason: RecordingEnd::Stopped
        })
    );
    let mut r = hound::WavReader::open(&path).unwrap();
    let spec = r.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16)
    );
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    assert_eq!(samples, expected);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_is_bounded_and_failures_are_reported() {
    let path = std::env::temp_dir().join(format!("perm-rec-{}-b.wav", std::process::id()));
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let p = peer().await;
    leg.set_remote(RemoteMedia::new(p.local_addr().unwrap(), Codec::Pcma))
        .unwrap();
    leg.record(&path, Duration::from_millis(250)).unwrap();
    probation_prefix(&p, leg.local_addr(), 8, 1, 0).await;
    for i in 0..30u16 {
        p.send_to(
            &rtp(8, i, 160 * i as u32, 1, false, &[0xAA; 160]),
            leg.local_addr(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let done = wait_event(&mut ev, SOON, |e| {
        matches!(e, MediaEvent::RecordingFinished { .. })
    })
    .await;
    assert_eq!(
        done,
        Some(MediaEvent::RecordingFinished {
            path: path.clone(),
            duration: Duration::from_millis(250),
            reason: RecordingEnd::MaxDuration
        })
    );
    let r = hound::WavReader::open(&path).unwrap();
    assert_eq!(r.len(), 2000);
    let _ = std::fs::remove_file(&path);

    leg.record("/nonexistent-dir/x/voicemail.wav", Duration::from_secs(5))
        .unwrap();
    let failed = wait_event(&mut ev, SOON, |e| {
        matches!(e, MediaEvent::RecordingFailed { .. })
    })
    .await;
    assert!(
        matches!(failed, Some(MediaEvent::RecordingFailed { .. })),
        "{failed:?}"
    );

    // Closing the leg finalises a recording in progress.
    let path = std::env::temp_dir().join(format!("perm-rec-{}-c.wav", std::process::id()));
    leg.record(&path, Duration::from_secs(5)).unwrap();
    p.send_to(&rtp(8, 100, 0, 1, false, &[0xAA; 160]), leg.local_addr())
        .await
        .unwrap();
    for _ in 0..100 {
        if leg.stats().packets_in >= 31 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    leg.close().await;
    let done = wait_event(&mut ev, SOON, |e| {
        matches!(e, MediaEvent::RecordingFinished { .. })
    })
    .await;
    assert!(
        matches!(
            done,
            Some(MediaEvent::RecordingFinished {
                reason: RecordingEnd::LegClosed,
                ..
            })
        ),
        "{done:?}"
    );
    assert_eq!(hound::WavReader::open(&path).unwrap().len(), 160);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn ephemeral_helper_sanity() {
    assert_eq!(free_even_port() % 2, 0);
}
