//! The per-packet building blocks do not allocate: checked with a counting
//! global allocator around many iterations of each hot path, SRTP
//! protection and authentication/decryption included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use permanence_media::rtp::{
    build_playout_packet, relay_packet, DtmfDetector, InLeg, OutLeg, Player, SeqTracker, TxStream,
    MAX_PACKET,
};
use permanence_media::source::{SourceGuard, Verdict};
use permanence_media::srtp::{MasterKey, SrtpReceiver, SrtpSender, Suite, SuiteKey, MAX_TAG_LEN};
use permanence_media::{g711, Codec, Language, Playlist, Prompts};
use rtp_rs::{RtpPacketBuilder, RtpReader};

struct Counting;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = COUNT.with(|c| c.get());
    f();
    COUNT.with(|c| c.get()) - before
}

#[test]
fn hot_paths_do_not_allocate() {
    let fr = Prompts::get(Language::Fr).unwrap();
    let packets: Vec<Vec<u8>> = (0..64u32)
        .map(|i| {
            let pt = if i % 8 == 7 { 101 } else { 0 };
            RtpPacketBuilder::new()
                .payload_type(pt)
                .ssrc(if i < 32 { 1 } else { 2 })
                .sequence((i as u16 * 3).into())
                .timestamp(i * 160)
                .payload(&[0x42u8; 160])
                .build()
                .unwrap()
        })
        .collect();
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
    let mut stream = TxStream::with_ids(5, 0, 0);
    let mut player =
        Player::new(Playlist::single(fr.greeting.clone()).then_loop(vec![fr.hold_music.clone()]));
    let mut seq = SeqTracker::default();
    let mut dtmf = DtmfDetector::default();
    let mut buf = [0u8; MAX_PACKET + MAX_TAG_LEN];
    let srtp_key = SuiteKey {
        suite: Suite::AesCm128HmacSha1_80,
        key: MasterKey::random(),
    };
    let mut srtp_tx = SrtpSender::new(srtp_key);
    let mut srtp_rx = SrtpReceiver::new(srtp_key);
    let mut decrypted = 0usize;
    let mut pcm = [0i16; 160];
    let mut sent = 0usize;
    let peer: std::net::SocketAddr = "192.0.2.10:4000".parse().unwrap();
    let outsider: std::net::SocketAddr = "[2001:db8::66]:5000".parse().unwrap();
    let mut guard = SourceGuard::new(3);
    let mut accepted = 0usize;
    let mut k = 0u16;
    let n = allocations_during(|| {
        let now = Instant::now();
        for round in 0..200 {
            // Every round re-learns (a signalled change), so probation,
            // learning, lock and refusals are all exercised.
            guard.signal(
                Some(peer),
                Some(std::net::IpAddr::from([10, 0, 0, round as u8])),
            );
            for p in &packets {
                let Ok(r) = RtpReader::new(p) else { continue };
                k = k.wrapping_add(1);
                let _ = guard.check(outsider, r.ssrc(), k);
                if matches!(guard.check(peer, r.ssrc(), k), Verdict::Accept) {
                    accepted += 1;
                }
                seq.on_packet(r.ssrc(), r.sequence_number().into());
                if r.payload_type() == 101 {
                    dtmf.on_packet(r.timestamp(), r.payload());
                } else {
                    g711::decode_into(Codec::Pcmu, r.payload(), &mut pcm);
                }
                let len = relay_packet(&r, round, from, to, &mut stream, &mut buf, now);
                sent += len.unwrap_or(0);
                // The SRTP leg's way: encrypt what is sent, then (as the
                // receiving leg would) authenticate and decrypt it in place.
                if let Some(n) = len.and_then(|l| srtp_tx.protect(&mut buf, l).ok()) {
                    if let Some(pkt) = buf.get_mut(..n) {
                        decrypted += srtp_rx.unprotect(pkt).map_or(0, |_| 1);
                    }
                }
            }
            for _ in 0..100 {
                if let Some(frame) = player.next_frame(Codec::Pcmu) {
                    sent += build_playout_packet(&mut buf, &mut stream, 0, frame, now, false)
                        .unwrap_or(0);
                }
            }
        }
    });
    assert!(sent > 0);
    assert!(accepted > 0);
    assert!(decrypted > 10_000, "{decrypted} SRTP packets round-tripped");
    assert_eq!(n, 0, "allocations on the packet path");
    // The counter works (guards against a test that cannot fail).
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}
