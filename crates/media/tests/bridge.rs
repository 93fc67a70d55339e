//! Bridging two legs: same-codec pass-through, PCMU<->PCMA transcoding,
//! telephone-event relay, hold/unhold switching between relay and playout.

mod common;

use std::time::Duration;

use common::*;
use permanence_media::{bridge, g711, unbridge, Codec, MediaEvent, Playlist, RemoteMedia};
use tokio::net::UdpSocket;

/// Sends `n` 20 ms audio packets (sine, encoded with `codec`) from `from` to
/// `to`, paced at 5 ms; returns the payloads sent.
async fn send_audio(
    from: &UdpSocket,
    to: std::net::SocketAddr,
    codec: Codec,
    pt: u8,
    ssrc: u32,
    first_seq: u16,
    n: usize,
) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    for i in 0..n {
        let pcm = sine_frame(500.0, i, 9000.0);
        let mut payload = [0u8; 160];
        g711::encode_into(codec, &pcm, &mut payload);
        let pkt = rtp(
            pt,
            first_seq.wrapping_add(i as u16),
            1000 + 160 * i as u32,
            ssrc,
            i == 0,
            &payload,
        );
        from.send_to(&pkt, to).await.unwrap();
        sent.push(payload.to_vec());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_codec_payloads_pass_unchanged_both_ways() {
    let engine = engine();
    let (a, mut a_ev) = engine.open_leg().unwrap();
    let (b, mut b_ev) = engine.open_leg().unwrap();
    let (pa, pb) = (peer().await, peer().await);
    a.set_remote(remote_pcmu(&pa)).unwrap();
    b.set_remote(remote_pcmu(&pb)).unwrap();
    bridge(&a, &b).unwrap();

    probation_prefix(&pa, a.local_addr(), 0, 0xAAAA, 65530).await;
    let sent = send_audio(&pa, a.local_addr(), Codec::Pcmu, 0, 0xAAAA, 65530, 20).await;
    let got = recv_n(&pb, 20).await;
    assert_coherent(&got, 0);
    assert_eq!(got[0].ssrc, b.ssrc(), "re-stamped with leg B's SSRC");
    assert_eq!(got[0].from.port(), b.port(), "sent from leg B's port");
    for (s, g) in sent.iter().zip(&got) {
        assert_eq!(s, &g.payload);
    }

    probation_prefix(&pb, b.local_addr(), 0, 0xBBBB, 7).await;
    let sent = send_audio(&pb, b.local_addr(), Codec::Pcmu, 0, 0xBBBB, 7, 20).await;
    let got = recv_n(&pa, 20).await;
    assert_coherent(&got, 0);
    assert_eq!(got[0].ssrc, a.ssrc());
    for (s, g) in sent.iter().zip(&got) {
        assert_eq!(s, &g.payload);
    }
    assert!(
        wait_event(&mut a_ev, SOON, |e| matches!(e, MediaEvent::Latched(_)))
            .await
            .is_some()
    );
    assert!(
        wait_event(&mut b_ev, SOON, |e| matches!(e, MediaEvent::Latched(_)))
            .await
            .is_some()
    );
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.packets_in, sb.packets_out), (20, 20));
    assert_eq!((sb.packets_in, sa.packets_out), (20, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcmu_and_pcma_are_transcoded_within_quantisation() {
    let engine = engine();
    let (a, _a_ev) = engine.open_leg().unwrap();
    let (b, _b_ev) = engine.open_leg().unwrap();
    let (pa, pb) = (peer().await, peer().await);
    a.set_remote(remote_pcmu(&pa)).unwrap();
    // Leg B: PCMA on a dynamic payload type, to check PT rewriting too.
    let mut rb = RemoteMedia::new(pb.local_addr().unwrap(), Codec::Pcma).with_dtmf(96);
    rb.payload_type = 110;
    b.set_remote(rb).unwrap();
    bridge(&a, &b).unwrap();

    let check = |sent: &[Vec<u8>], from: Codec, got: &[Pkt], to: Codec| {
        for (s, g) in sent.iter().zip(got) {
            assert_eq!(s.len(), g.payload.len());
            for (&x, &y) in s.iter().zip(&g.payload) {
                let (lx, ly) = (from.decode(x) as i32, to.decode(y) as i32);
                assert!((lx - ly).abs() <= lx.abs() / 16 + 16, "{lx} vs {ly}");
            }
        }
    };
    probation_prefix(&pa, a.local_addr(), 0, 1, 100).await;
    let sent = send_audio(&pa, a.local_addr(), Codec::Pcmu, 0, 1, 100, 15).await;
    let got = recv_n(&pb, 15).await;
    assert_coherent(&got, 110);
    check(&sent, Codec::Pcmu, &got, Codec::Pcma);
    let pcm: Vec<i16> = got
        .iter()
        .flat_map(|p| p.payload.iter().map(|&x| g711::alaw_decode(x)))
        .collect();
    assert!(rms(&pcm) > 3000.0);

    probation_prefix(&pb, b.local_addr(), 110, 2, 100).await;
    let sent = send_audio(&pb, b.local_addr(), Codec::Pcma, 110, 2, 100, 15).await;
    let got = recv_n(&pa, 15).await;
    assert_coherent(&got, 0);
    check(&sent, Codec::Pcma, &got, Codec::Pcmu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telephone_events_are_relayed_with_the_other_legs_payload_type() {
    let engine = engine();
    let (a, mut a_ev) = engine.open_leg().unwrap();
    let (b, _b_ev) = engine.open_leg().unwrap();
    let (c, _c_ev) = engine.open_leg().unwrap();
    let (pa, pb, pc) = (peer().await, peer().await, peer().await);
    a.set_remote(remote_pcmu(&pa)).unwrap(); // DTMF PT 101
    b.set_remote(RemoteMedia::new(pb.local_addr().unwrap(), Codec::Pcmu).with_dtmf(96))
        .unwrap();
    bridge(&a, &b).unwrap();

    // One key press: 3 updates and 3 end packets, same timestamp.
    probation_prefix(&pa, a.local_addr(), 0, 9, 10).await;
    let ts = 48000;
    let mut sent = Vec::new();
    for (i, (end, dur)) in [
        (false, 160),
        (false, 320),
        (false, 480),
        (true, 640),
        (true, 640),
        (true, 640),
    ]
    .into_iter()
    .enumerate()
    {
        let payload = dtmf_payload(5, end, dur);
        pa.send_to(
            &rtp(101, 10 + i as u16, ts, 9, i == 0, &payload),
            a.local_addr(),
        )
        .await
        .unwrap();
        sent.push(payload);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = recv_n(&pb, 6).await;
    for (s, g) in sent.iter().zip(&got) {
        assert_eq!(g.pt, 96);
        assert_eq!(&g.payload[..], &s[..]);
        assert_eq!(g.ts, got[0].ts, "event timestamp preserved");
    }
    assert!(got[0].marker);
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
    }
    // The digit is also reported, once, on the receiving leg.
    let evs = drain_events(&mut a_ev, Duration::from_millis(300)).await;
    let digits: Vec<_> = evs
        .iter()
        .filter(|e| matches!(e, MediaEvent::Dtmf(_)))
        .collect();
    assert_eq!(digits, [&MediaEvent::Dtmf('5')]);

    // A leg without telephone-event gets no event packets, audio still flows.
    unbridge(&a, &b);
    c.set_remote(RemoteMedia::new(pc.local_addr().unwrap(), Codec::Pcmu))
        .unwrap();
    bridge(&a, &c).unwrap();
    pa.send_to(
        &rtp(101, 20, ts + 8000, 9, true, &dtmf_payload(6, false, 160)),
        a.local_addr(),
    )
    .await
    .unwrap();
    pa.send_to(
        &rtp(0, 21, ts + 8160, 9, false, &[0xFFu8; 160]),
        a.local_addr(),
    )
    .await
    .unwrap();
    let p = recv_pkt(&pc, SOON).await.expect("audio relayed");
    assert_eq!(p.pt, 0);
    assert!(recv_pkt(&pc, Duration::from_millis(200)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_unhold_keep_one_coherent_stream_towards_the_caller() {
    let engine = engine();
    let (caller, _cev) = engine.open_leg().unwrap();
    let (agent, _aev) = engine.open_leg().unwrap();
    let (pc, pa) = (peer().await, peer().await);
    caller.set_remote(remote_pcmu(&pc)).unwrap();
    agent.set_remote(remote_pcmu(&pa)).unwrap();
    let music = tone("music", 392.0, 3000, 7000.0);

    // Phase 1: queue music to the caller.
    caller.play(Playlist::looping(music.clone())).unwrap();
    let mut all = recv_n(&pc, 5).await;
    // Phase 2: bridged, the agent talks.
    bridge(&caller, &agent).unwrap();
    send_audio(&pa, agent.local_addr(), Codec::Pcmu, 0, 0x51, 4000, 10).await;
    // Phase 3: agent puts the call on hold, music again.
    unbridge(&caller, &agent);
    caller.play(Playlist::looping(music.clone())).unwrap();
    // Collect until we have seen music again after the relayed audio.
    let mut saw_relay = false;
    loop {
        let p = recv_pkt(&pc, SOON).await.expect("stream continues");
        let is_music = (0..music.frame_count())
            .any(|i| music.frame(Codec::Pcmu, i).unwrap()[..] == p.payload[..]);
        all.push(p);
        if !is_music {
            saw_relay = true;
        } else if saw_relay {
            break;
        }
        assert!(all.len() < 400, "did not switch back to music");
    }
    let ssrc = all[0].ssrc;
    let mut markers = 0;
    for w in all.windows(2) {
        let (x, y) = (&w[0], &w[1]);
        assert_eq!(y.ssrc, ssrc, "one SSRC across playout and relay");
        assert_eq!(y.seq, x.seq.wrapping_add(1), "no sequence jump at switches");
        let dts = y.ts.wrapping_sub(x.ts);
        assert!(
            (160..80_000).contains(&dts),
            "timestamp moves forward: {dts}"
        );
        if y.marker {
            markers += 1;
            assert!(dts >= 160);
        } else {
            assert_eq!(dts, 160, "within a segment timestamps step by 160");
        }
    }
    assert_eq!(markers, 2, "marker at playout->relay and relay->playout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_one_side_returns_the_other_to_idle() {
    let engine = engine();
    let (a, _a_ev) = engine.open_leg().unwrap();
    let (b, _b_ev) = engine.open_leg().unwrap();
    let pa = peer().await;
    a.set_remote(remote_pcmu(&pa)).unwrap();
    assert!(bridge(&a, &a).is_err(), "self bridge refused");
    bridge(&a, &b).unwrap();
    b.close().await;
    // `a` can play again once the peer is gone.
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.play(Playlist::single(tone("t", 440.0, 100, 6000.0)))
        .unwrap();
    let got = recv_n(&pa, 5).await;
    assert_coherent(&got, 0);
    a.close().await;
    assert_eq!(engine.ports_in_use(), 0);
}
