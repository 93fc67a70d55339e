//! Playout: prompts arrive as coherent 20 ms RTP streams with the right audio.

mod common;

use std::time::Duration;

use common::*;
use permanence_media::{g711, Codec, Language, MediaEvent, Playlist, Prompts, RemoteMedia};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_is_sent_as_pcmu_frames_and_is_audible() {
    let fr = Prompts::get(Language::Fr).unwrap();
    let engine = engine();
    let (leg, _ev) = engine.open_leg().unwrap();
    let peer = peer().await;
    leg.set_remote(remote_pcmu(&peer)).unwrap();
    leg.play(Playlist::single(fr.greeting.clone())).unwrap();

    let pkts = recv_n(&peer, 50).await;
    assert_coherent(&pkts, 0);
    assert_eq!(pkts[0].ssrc, leg.ssrc());
    assert_eq!(pkts[0].from.port(), leg.port(), "sent from the leg's port");
    // Payloads are exactly the pre-encoded greeting frames, in order.
    for (i, p) in pkts.iter().enumerate() {
        assert_eq!(
            &p.payload[..],
            &fr.greeting.frame(Codec::Pcmu, i).unwrap()[..],
            "frame {i}"
        );
    }
    // And they decode to speech, not silence.
    let pcm: Vec<i16> = pkts
        .iter()
        .flat_map(|p| p.payload.iter().map(|&b| g711::ulaw_decode(b)))
        .collect();
    assert!(rms(&pcm) > 300.0, "greeting rms {}", rms(&pcm));
    leg.close().await;
    assert_eq!(engine.ports_in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intro_then_looped_hold_music_continues_the_stream() {
    let fr = Prompts::get(Language::Fr).unwrap();
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let peer = peer().await;
    leg.set_remote(RemoteMedia::new(peer.local_addr().unwrap(), Codec::Pcma))
        .unwrap();
    let intro = tone("intro", 440.0, 200, 8000.0); // 10 frames
    leg.play(Playlist::single(intro.clone()).then_loop(vec![fr.hold_music.clone()]))
        .unwrap();

    let pkts = recv_n(&peer, 40).await;
    assert_coherent(&pkts, 8);
    for (i, p) in pkts.iter().enumerate() {
        let expected = if i < 10 {
            intro.frame(Codec::Pcma, i).unwrap()
        } else {
            fr.hold_music.frame(Codec::Pcma, i - 10).unwrap()
        };
        assert_eq!(&p.payload[..], &expected[..], "frame {i}");
    }
    let music: Vec<i16> = pkts[10..]
        .iter()
        .flat_map(|p| p.payload.iter().map(|&b| g711::alaw_decode(b)))
        .collect();
    assert!(rms(&music) > 300.0, "hold music rms {}", rms(&music));
    // A looping playlist never reports the end.
    let finished = wait_event(&mut ev, Duration::from_millis(200), |e| {
        *e == MediaEvent::PlaybackFinished
    })
    .await;
    assert_eq!(finished, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_loop_wraps_around() {
    let engine = engine();
    let (leg, _ev) = engine.open_leg().unwrap();
    let peer = peer().await;
    leg.set_remote(remote_pcmu(&peer)).unwrap();
    let a = tone("a", 300.0, 60, 5000.0); // 3 frames
    leg.play(Playlist::looping(a.clone())).unwrap();
    let pkts = recv_n(&peer, 8).await;
    assert_coherent(&pkts, 0);
    for (i, p) in pkts.iter().enumerate() {
        assert_eq!(&p.payload[..], &a.frame(Codec::Pcmu, i % 3).unwrap()[..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finite_playlist_emits_playback_finished_after_every_frame() {
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let peer = peer().await;
    leg.set_remote(remote_pcmu(&peer)).unwrap();
    let a = tone("a", 440.0, 100, 6000.0); // 5 frames
    let b = tone("b", 660.0, 60, 6000.0); // 3 frames
    leg.play(Playlist::once(vec![a, b])).unwrap();
    let ev = wait_event(&mut ev, SOON, |e| *e == MediaEvent::PlaybackFinished).await;
    assert_eq!(ev, Some(MediaEvent::PlaybackFinished));
    let pkts = recv_n(&peer, 8).await;
    assert_coherent(&pkts, 0);
    assert!(
        recv_pkt(&peer, Duration::from_millis(200)).await.is_none(),
        "nothing after the end"
    );
    let s = leg.stats();
    assert_eq!(s.packets_out, 8);
    assert_eq!(s.bytes_out, 8 * 172);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_prompt_is_played_as_is() {
    // The real closed prompt is ~10 s long: check its start goes out intact
    // and audible (the end-of-playlist event is covered with short prompts).
    let fr = Prompts::get(Language::Fr).unwrap();
    let engine = engine();
    let (leg, _ev) = engine.open_leg().unwrap();
    let peer = peer().await;
    leg.set_remote(remote_pcmu(&peer)).unwrap();
    leg.play(Playlist::single(fr.closed.clone())).unwrap();
    let pkts = recv_n(&peer, 50).await;
    assert_coherent(&pkts, 0);
    for (i, p) in pkts.iter().enumerate() {
        assert_eq!(
            &p.payload[..],
            &fr.closed.frame(Codec::Pcmu, i).unwrap()[..]
        );
    }
    let pcm: Vec<i16> = pkts
        .iter()
        .flat_map(|p| p.payload.iter().map(|&b| g711::ulaw_decode(b)))
        .collect();
    assert!(rms(&pcm) > 300.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_playlist_keeps_sequence_and_sets_marker() {
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let peer = peer().await;
    leg.set_remote(remote_pcmu(&peer)).unwrap();
    let a = tone("a", 440.0, 2000, 6000.0);
    let b = tone("b", 880.0, 2000, 6000.0);
    leg.play(Playlist::single(a.clone())).unwrap();
    let first = recv_n(&peer, 5).await;
    leg.play(Playlist::single(b.clone())).unwrap();
    // Packets of `a` may still be in flight; find the first packet of `b`.
    let mut prev = first.last().unwrap().clone();
    let mut switched = None;
    for _ in 0..50 {
        let p = recv_pkt(&peer, SOON).await.expect("stream continues");
        assert_eq!(
            p.seq,
            prev.seq.wrapping_add(1),
            "sequence continues across prompts"
        );
        assert_eq!(p.ssrc, prev.ssrc);
        assert!(p.ts.wrapping_sub(prev.ts) >= 160 && p.ts.wrapping_sub(prev.ts) < 8000);
        if p.payload[..] == b.frame(Codec::Pcmu, 0).unwrap()[..] {
            switched = Some(p);
            break;
        }
        assert!(!p.marker);
        prev = p;
    }
    let s = switched.expect("second playlist started");
    assert!(s.marker, "marker on restart");
    // Stop: nothing more is sent and no PlaybackFinished.
    leg.stop_playback().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    while recv_pkt(&peer, Duration::from_millis(50)).await.is_some() {}
    assert!(recv_pkt(&peer, Duration::from_millis(200)).await.is_none());
    let evs = drain_events(&mut ev, Duration::from_millis(100)).await;
    assert!(!evs.contains(&MediaEvent::PlaybackFinished), "{evs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_to_a_remote_on_hold() {
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let peer = peer().await;
    let mut r = remote_pcmu(&peer);
    r.direction = permanence_media::Direction::SendOnly; // remote holds us
    leg.set_remote(r).unwrap();
    leg.play(Playlist::single(tone("a", 440.0, 100, 6000.0)))
        .unwrap();
    // Playback still runs (and finishes) but nothing goes on the wire.
    assert!(
        wait_event(&mut ev, SOON, |e| *e == MediaEvent::PlaybackFinished)
            .await
            .is_some()
    );
    assert!(recv_pkt(&peer, Duration::from_millis(100)).await.is_none());
    assert_eq!(leg.stats().packets_out, 0);
}
