//! SRTP legs over loopback: an SRTP leg bridged to a plain one (with
//! transcoding) both ways, playout encrypted, forged and replayed packets
//! refused before the source guard, re-keying on a new remote key.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use permanence_media::srtp::{MasterKey, SrtpReceiver, SrtpSender, Suite, SuiteKey};
use permanence_media::{bridge, g711, Codec, MediaEvent, Playlist, RemoteMedia};
use rtp_rs::RtpReader;
use tokio::net::UdpSocket;
use tokio::time::timeout;

fn suite_key(key: MasterKey) -> SuiteKey {
    SuiteKey {
        suite: Suite::AesCm128HmacSha1_80,
        key,
    }
}

/// The softphone side of an SRTP leg: encrypts with its own key, decrypts
/// with the leg's.
struct SrtpPeer {
    sock: UdpSocket,
    tx: SrtpSender,
    rx: SrtpReceiver,
    key: MasterKey,
}

impl SrtpPeer {
    async fn new(leg_key: MasterKey) -> Self {
        let key = MasterKey::random();
        SrtpPeer {
            sock: peer().await,
            tx: SrtpSender::new(suite_key(key)),
            rx: SrtpReceiver::new(suite_key(leg_key)),
            key,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn protect(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + 10, 0);
        let n = self.tx.protect(&mut buf, plain.len()).unwrap();
        buf.truncate(n);
        buf
    }

    /// Sends `n` SRTP packets of a 500 Hz tone in `codec`, after the
    /// probation prefix; returns the plain payloads and the last packet
    /// sent (for replays).
    async fn send_audio(
        &mut self,
        to: SocketAddr,
        codec: Codec,
        pt: u8,
        n: usize,
    ) -> (Vec<Vec<u8>>, Vec<u8>) {
        let ssrc = 0x5EC0_0001;
        let first = 40_000u16;
        for k in (1..PROBATION).rev() {
            let p = self.protect(&rtp(pt, first - k, 0, ssrc, false, &[0xFF; 160]));
            self.sock.send_to(&p, to).await.unwrap();
        }
        let mut sent = Vec::new();
        let mut last = Vec::new();
        for i in 0..n {
            let mut payload = [0u8; 160];
            g711::encode_into(codec, &sine_frame(500.0, i, 9000.0), &mut payload);
            let plain = rtp(
                pt,
                first.wrapping_add(i as u16),
                160 * i as u32,
                ssrc,
                i == 0,
                &payload,
            );
            last = self.protect(&plain);
            self.sock.send_to(&last, to).await.unwrap();
            sent.push(payload.to_vec());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (sent, last)
    }

    /// Receives `n` SRTP packets and decrypts them; panics if one does not
    /// authenticate or arrives in clear.
    async fn recv_n(&mut self, n: usize) -> Vec<Pkt> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while out.len() < n {
            let (len, from) = timeout(SOON, self.sock.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} SRTP packets", out.len()))
                .unwrap();
            let plain_len = self
                .rx
                .unprotect(&mut buf[..len])
                .unwrap_or_else(|e| panic!("packet {} does not decrypt: {e}", out.len()));
            assert_eq!(plain_len + 10, len, "80-bit tag");
            let r = RtpReader::new(&buf[..plain_len]).unwrap();
            out.push(Pkt {
                pt: r.payload_type(),
                marker: r.mark(),
                seq: r.sequence_number().into(),
                ts: r.timestamp(),
                ssrc: r.ssrc(),
                payload: r.payload().to_vec(),
                from,
            });
        }
        out
    }
}

fn close(from: Codec, sent: &[Vec<u8>], to: Codec, got: &[Pkt]) {
    assert_eq!(sent.len(), got.len());
    for (s, g) in sent.iter().zip(got) {
        assert_eq!(s.len(), g.payload.len());
        for (&x, &y) in s.iter().zip(&g.payload) {
            let (lx, ly) = (i32::from(from.decode(x)), i32::from(to.decode(y)));
            assert!((lx - ly).abs() <= lx.abs() / 16 + 16, "{lx} vs {ly}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_leg_bridged_to_a_plain_leg_both_ways_with_transcoding() {
    let engine = engine();
    let (caller, _c_ev) = engine.open_leg().unwrap();
    let (agent, mut a_ev) = engine.open_leg().unwrap();
    assert_ne!(caller.srtp_key(), agent.srtp_key(), "one key per leg");
    let pc = peer().await;
    let mut phone = SrtpPeer::new(agent.srtp_key()).await;
    caller.set_remote(remote_pcmu(&pc)).unwrap();
    agent
        .set_remote(
            RemoteMedia::new(phone.addr(), Codec::Pcma)
                .with_dtmf(101)
                .with_srtp(Some(suite_key(phone.key))),
        )
        .unwrap();
    bridge(&caller, &agent).unwrap();

    // Forged traffic first, from the phone's own address and from another
    // one: plain RTP and SRTP under another key. Refused before the source
    // guard: nothing counted as foreign, nothing learnt.
    let attacker = peer_at("127.0.0.3").await;
    let mut forger = SrtpSender::new(suite_key(MasterKey::random()));
    for seq in 0..10u16 {
        let plain = rtp(8, seq, 0, 0xBAD, false, &[0x55; 160]);
        let mut forged = plain.clone();
        forged.resize(plain.len() + 10, 0);
        let n = forger.protect(&mut forged, plain.len()).unwrap();
        for s in [&attacker, &phone.sock] {
            s.send_to(&plain, agent.local_addr()).await.unwrap();
            s.send_to(&forged[..n], agent.local_addr()).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let st = agent.stats();
    assert_eq!(st.srtp_auth_failed, 40, "{st:?}");
    assert_eq!(
        (st.foreign, st.probation, st.packets_in),
        (0, 0, 0),
        "{st:?}"
    );
    assert!(
        drain_events(&mut a_ev, Duration::from_millis(50))
            .await
            .is_empty(),
        "nothing learnt from forged packets"
    );

    // Caller (plain PCMU) to the phone (SRTP PCMA).
    probation_prefix(&pc, caller.local_addr(), 0, 0xCA11, 100).await;
    let mut sent = Vec::new();
    for i in 0..15 {
        let mut payload = [0u8; 160];
        g711::encode_into(Codec::Pcmu, &sine_frame(500.0, i, 9000.0), &mut payload);
        let pkt = rtp(0, 100 + i as u16, 160 * i as u32, 0xCA11, i == 0, &payload);
        pc.send_to(&pkt, caller.local_addr()).await.unwrap();
        sent.push(payload.to_vec());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = phone.recv_n(15).await;
    assert_coherent(&got, 8);
    assert_eq!(got[0].ssrc, agent.ssrc());
    close(Codec::Pcmu, &sent, Codec::Pcma, &got);

    // The phone (SRTP PCMA) to the caller (plain PCMU).
    let (sent, last) = phone
        .send_audio(agent.local_addr(), Codec::Pcma, 8, 15)
        .await;
    let got = recv_n(&pc, 15).await;
    assert_coherent(&got, 0);
    close(Codec::Pcma, &sent, Codec::Pcmu, &got);
    assert!(wait_event(
        &mut a_ev,
        SOON,
        |e| matches!(e, MediaEvent::Latched(a) if *a == phone.addr())
    )
    .await
    .is_some());

    // A replayed packet is refused and not relayed.
    phone.sock.send_to(&last, agent.local_addr()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(agent.stats().srtp_replayed, 1);
    assert!(recv_pkt(&pc, Duration::from_millis(100)).await.is_none());
    let st = agent.stats();
    assert_eq!((st.packets_in, st.packets_out), (15, 15), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playout_on_an_srtp_leg_is_encrypted_and_rekeying_follows_the_remote() {
    let engine = engine();
    let (leg, mut ev) = engine.open_leg().unwrap();
    let mut phone = SrtpPeer::new(leg.srtp_key()).await;
    let remote = RemoteMedia::new(phone.addr(), Codec::Pcmu).with_srtp(Some(suite_key(phone.key)));
    leg.set_remote(remote).unwrap();
    leg.play(Playlist::single(tone("t", 440.0, 200, 8000.0)))
        .unwrap();
    let got = phone.recv_n(10).await;
    assert_coherent(&got, 0);
    let pcm: Vec<i16> = got
        .iter()
        .flat_map(|p| p.payload.iter().map(|&x| g711::ulaw_decode(x)))
        .collect();
    assert!(rms(&pcm) > 3000.0);
    assert!(
        wait_event(&mut ev, SOON, |e| matches!(e, MediaEvent::PlaybackFinished))
            .await
            .is_some()
    );

    // The same keys again (a re-INVITE): the stream goes on; the phone's
    // receiver keeps its state (the rollover counter and window carry on).
    leg.set_remote(remote).unwrap();
    leg.play(Playlist::single(tone("t", 440.0, 100, 8000.0)))
        .unwrap();
    let again = phone.recv_n(5).await;
    assert_eq!(again[0].ssrc, got[0].ssrc);
    // The phone re-keys: packets under the old key are refused.
    let old_key_packet = phone.protect(&rtp(0, 9, 0, 1, false, &[0xFF; 160]));
    let new_key = MasterKey::random();
    leg.set_remote(remote.with_srtp(Some(suite_key(new_key))))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    phone
        .sock
        .send_to(&old_key_packet, leg.local_addr())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(leg.stats().srtp_auth_failed, 1);
    phone.tx = SrtpSender::new(suite_key(new_key));
    phone.key = new_key;
    let (_, _) = phone.send_audio(leg.local_addr(), Codec::Pcmu, 0, 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let st = leg.stats();
    assert_eq!((st.packets_in, st.srtp_auth_failed), (5, 1), "{st:?}");
    // Back to plain RTP: SRTP packets are no longer RTP we accept
    // (authentication is not attempted; the probation restarts nothing
    // since the peer is the same).
    leg.set_remote(remote.with_srtp(None)).unwrap();
    leg.play(Playlist::single(tone("t", 440.0, 60, 8000.0)))
        .unwrap();
    let plain = recv_n(&phone.sock, 3).await;
    assert!(
        plain.iter().all(|p| p.payload.len() == 160),
        "plain RTP again"
    );
}
