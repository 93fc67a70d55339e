//! Criterion benches of the media hot paths.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-media cargo bench -p permanence-media --bench media`
//!
//! * `g711/*`: encoding/decoding/transcoding one 20 ms frame (160 samples).
//! * `relay/*`: the per-packet work of a bridge (parse the incoming RTP
//!   packet, re-stamp it on the outgoing stream, copy or transcode the
//!   payload into the fixed output buffer), without the socket calls;
//!   `relay/source_check_*`: the strict source check each received packet
//!   goes through first (from the locked source; from a refused one).
//! * `srtp/*`: SRTP (AES_CM_128_HMAC_SHA1_80) of one 20 ms G.711 packet
//!   (172 bytes of RTP): `protect` (encrypt, tag) as a sending SRTP leg
//!   does last, and `protect_unprotect`: that plus what the receiving leg
//!   does first (tag check, replay window, decrypt); each in place.
//! * `playout/tick`: the per-20 ms work of a playing leg (next pre-encoded
//!   frame, stamp, build the packet), without the socket call.
//! * `loopback/bridge_round_trip`: one packet through a real bridge of two
//!   legs over 127.0.0.1 (two UDP hops, tokio tasks), i.e. latency including
//!   syscalls and scheduling.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use permanence_media::rtp::{
    build_playout_packet, relay_packet, DtmfDetector, InLeg, OutLeg, Player, SeqTracker, TxStream,
    MAX_PACKET,
};
use permanence_media::source::SourceGuard;
use permanence_media::srtp::{MasterKey, SrtpReceiver, SrtpSender, Suite, SuiteKey, MAX_TAG_LEN};
use permanence_media::{
    g711, Codec, Language, MediaConfig, MediaEngine, Playlist, Prompts, RemoteMedia,
};
use rtp_rs::{RtpPacketBuilder, RtpReader};

fn g711_benches(c: &mut Criterion) {
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i as f64 * 0.3).sin() * 12000.0) as i16)
        .collect();
    let mut enc = [0u8; 160];
    let mut dec = [0i16; 160];
    let mut g = c.benchmark_group("g711");
    g.throughput(Throughput::Elements(160));
    g.bench_function("ulaw_encode_frame", |b| {
        b.iter(|| g711::encode_into(Codec::Pcmu, black_box(&pcm), &mut enc))
    });
    g.bench_function("alaw_encode_frame", |b| {
        b.iter(|| g711::encode_into(Codec::Pcma, black_box(&pcm), &mut enc))
    });
    g.bench_function("ulaw_decode_frame", |b| {
        b.iter(|| g711::decode_into(Codec::Pcmu, black_box(&enc), &mut dec))
    });
    let src = enc;
    let mut out = [0u8; 160];
    g.bench_function("pcmu_to_pcma_frame", |b| {
        b.iter(|| g711::transcode_into(Codec::Pcmu, Codec::Pcma, black_box(&src), &mut out))
    });
    g.finish();
}

fn relay_benches(c: &mut Criterion) {
    let payload = [0x55u8; 160];
    // A window of consecutive packets so sequence/timestamp handling is
    // exercised as in a live stream.
    let packets: Vec<Vec<u8>> = (0..256u32)
        .map(|i| {
            RtpPacketBuilder::new()
                .payload_type(0)
                .ssrc(0x1234)
                .sequence((i as u16).into())
                .timestamp(i * 160)
                .payload(&payload)
                .build()
                .unwrap()
        })
        .collect();
    let from = InLeg {
        codec: Codec::Pcmu,
        payload_type: 0,
        dtmf_payload_type: Some(101),
    };
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(1));
    for (name, to_codec, to_pt) in [
        ("same_codec_pcmu", Codec::Pcmu, 0u8),
        ("transcode_pcmu_to_pcma", Codec::Pcma, 8u8),
    ] {
        let to = OutLeg {
            codec: to_codec,
            payload_type: to_pt,
            dtmf_payload_type: Some(96),
        };
        let mut stream = TxStream::with_ids(1, 0, 0);
        let mut seq = SeqTracker::default();
        let mut buf = [0u8; MAX_PACKET];
        let now = Instant::now();
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                let data = &packets[i & 255];
                i = i.wrapping_add(1);
                let r = RtpReader::new(black_box(data)).ok()?;
                seq.on_packet(r.ssrc(), r.sequence_number().into());
                relay_packet(&r, 1, from, to, &mut stream, &mut buf, now)
            })
        });
    }
    let ev = RtpPacketBuilder::new()
        .payload_type(101)
        .ssrc(1)
        .timestamp(8000)
        .payload(&[1, 10, 0, 160])
        .build()
        .unwrap();
    let mut det = DtmfDetector::default();
    g.bench_function("dtmf_detect_repeat", |b| {
        b.iter(|| {
            let r = RtpReader::new(black_box(&ev)).ok()?;
            det.on_packet(r.timestamp(), r.payload())
        })
    });
    let peer: std::net::SocketAddr = "192.0.2.10:4000".parse().unwrap();
    let outsider: std::net::SocketAddr = "203.0.113.66:5000".parse().unwrap();
    let mut guard = SourceGuard::new(3);
    guard.signal(Some(peer), None);
    for s in 0..3 {
        guard.check(peer, 0x1234, s);
    }
    let mut i = 0u16;
    g.bench_function("source_check_locked", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            guard.check(*black_box(&peer), 0x1234, i)
        })
    });
    g.bench_function("source_check_foreign", |b| {
        b.iter(|| guard.check(*black_box(&outsider), 0x9999, 1))
    });
    g.finish();
}

fn srtp_benches(c: &mut Criterion) {
    let key = SuiteKey {
        suite: Suite::AesCm128HmacSha1_80,
        key: MasterKey::random(),
    };
    let mut plain = RtpPacketBuilder::new()
        .payload_type(0)
        .ssrc(0x1234)
        .payload(&[0x55u8; 160])
        .build()
        .unwrap();
    let len = plain.len();
    let mut buf = [0u8; MAX_PACKET + MAX_TAG_LEN];
    let mut g = c.benchmark_group("srtp");
    g.throughput(Throughput::Elements(1));
    // Each iteration is the next packet of the stream (a replay would be
    // refused before the tag is computed).
    let next = |seq: &mut u16, plain: &mut Vec<u8>, buf: &mut [u8]| {
        *seq = seq.wrapping_add(1);
        plain[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[..len].copy_from_slice(plain);
    };
    let mut tx = SrtpSender::new(key);
    let mut seq = 0u16;
    g.bench_function("protect", |b| {
        b.iter(|| {
            next(&mut seq, &mut plain, &mut buf);
            tx.protect(black_box(&mut buf), len).ok()
        })
    });
    let mut tx = SrtpSender::new(key);
    let mut rx = SrtpReceiver::new(key);
    let mut seq = 0u16;
    g.bench_function("protect_unprotect", |b| {
        b.iter(|| {
            next(&mut seq, &mut plain, &mut buf);
            let n = tx.protect(black_box(&mut buf), len).ok()?;
            rx.unprotect(black_box(&mut buf[..n])).ok()
        })
    });
    g.finish();
}

fn playout_benches(c: &mut Criterion) {
    let fr = Prompts::get(Language::Fr).expect("embedded prompts");
    let mut player = Player::new(Playlist::looping(fr.hold_music.clone()));
    let mut stream = TxStream::with_ids(1, 0, 0);
    let mut buf = [0u8; MAX_PACKET];
    let now = Instant::now();
    let mut g = c.benchmark_group("playout");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tick", |b| {
        b.iter(|| {
            let frame = player.next_frame(Codec::Pcma)?;
            build_playout_packet(&mut buf, &mut stream, 8, frame, now, false)
        })
    });
    g.finish();
}

fn loopback_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (engine, a, b, pa, pb) = rt.block_on(async {
        let mut cfg = MediaConfig::new("127.0.0.1".parse().unwrap(), 42000, 42999);
        cfg.rtp_timeout = Duration::from_secs(3600);
        let engine = MediaEngine::new(cfg).unwrap();
        let (a, _) = engine.open_leg().unwrap();
        let (b, _) = engine.open_leg().unwrap();
        let pa = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let pb = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        a.set_remote(RemoteMedia::new(pa.local_addr().unwrap(), Codec::Pcmu))
            .unwrap();
        b.set_remote(RemoteMedia::new(pb.local_addr().unwrap(), Codec::Pcma))
            .unwrap();
        permanence_media::bridge(&a, &b).unwrap();
        // Leg A learns `pa` first (strict source probation: the first
        // packets of a new source are dropped), outside the measurement.
        let mut rx = [0u8; 2048];
        for seq in 1..=3u16 {
            let pkt = RtpPacketBuilder::new()
                .payload_type(0)
                .ssrc(7)
                .sequence(seq.into())
                .timestamp(u32::from(seq) * 160)
                .payload(&[0x55u8; 160])
                .build()
                .unwrap();
            pa.send_to(&pkt, a.local_addr()).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), pb.recv_from(&mut rx))
            .await
            .expect("leg A learnt its source")
            .unwrap();
        (engine, a, b, pa, pb)
    });
    let to = a.local_addr();
    let mut seq = 3u16;
    let mut g = c.benchmark_group("loopback");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bridge_round_trip_transcoded", |bch| {
        bch.iter_custom(|iters| {
            rt.block_on(async {
                let mut rx = [0u8; 2048];
                let start = Instant::now();
                for _ in 0..iters {
                    seq = seq.wrapping_add(1);
                    let pkt = RtpPacketBuilder::new()
                        .payload_type(0)
                        .ssrc(7)
                        .sequence(seq.into())
                        .timestamp(u32::from(seq) * 160)
                        .payload(&[0x55u8; 160])
                        .build()
                        .unwrap();
                    pa.send_to(&pkt, to).await.unwrap();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), pb.recv_from(&mut rx)).await;
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    drop((a, b));
    drop(engine);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = g711_benches, relay_benches, srtp_benches, playout_benches, loopback_benches
}
criterion_main!(benches);
