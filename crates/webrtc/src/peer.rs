//! One browser's audio: a WebRTC peer connection and its relay socket.

use crate::{WebRtcError, PCMA, PCMU, TELEPHONE_EVENT};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::shared::marshal::{Marshal, Unmarshal};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    Registry, SettingEngineBuilder,
};

/// ICE gathering of our single host candidate must finish within this.
const GATHERING_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest RTP packet relayed.
const MAX_PACKET: usize = 1500;

/// Where a peer's sockets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebRtcSettings {
    /// The address the ICE socket binds: our host candidate.
    pub ice_ip: IpAddr,
    /// The address the relay socket binds: the media legs' address.
    pub relay_ip: IpAddr,
    /// The address announced in the candidate instead of `ice_ip` (a
    /// 1:1 NAT's public address), if any.
    pub advertise: Option<IpAddr>,
    /// ICE consent lost for this long: the browser is disconnected...
    pub disconnected_after: Duration,
    /// ... and for this long: gone ([`PeerState::Gone`]).
    pub failed_after: Duration,
}

impl WebRtcSettings {
    /// Both sockets on `ip`; a browser that stops answering ICE consent
    /// checks is disconnected after 2 s and gone about 4 s later (a
    /// browser refreshes consent every second or so, RFC 7675).
    pub fn on(ip: IpAddr) -> Self {
        Self {
            ice_ip: ip,
            relay_ip: ip,
            advertise: None,
            disconnected_after: Duration::from_secs(2),
            failed_after: Duration::from_secs(4),
        }
    }
}

/// Where the browser's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// ICE and DTLS under way.
    Connecting,
    /// Media flows.
    Connected,
    /// ICE or DTLS failed, consent was lost, or the peer closed: nothing
    /// more will flow.
    Gone,
}

/// A browser's audio, relayed to and from a media leg of the engine. Drop
/// or [`Peer::close`] it when the call leg ends.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    relay_addr: SocketAddr,
    state: watch::Receiver<PeerState>,
    outbound: JoinHandle<()>,
    handler: Arc<Handler>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("relay_addr", &self.relay_addr)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

/// The peer connection's callbacks: gathering, state, the browser's track.
struct Handler {
    gathered: watch::Sender<bool>,
    state: watch::Sender<PeerState>,
    relay: Arc<UdpSocket>,
    media: SocketAddr,
    inbound: std::sync::Mutex<Option<JoinHandle<()>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        debug!(?state, "WebRTC connection state");
        let ours = match state {
            RTCPeerConnectionState::Connected => PeerState::Connected,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => PeerState::Gone,
            _ => return,
        };
        self.state.send_if_modified(|s| {
            let changed = *s != ours && *s != PeerState::Gone;
            if changed {
                *s = ours;
            }
            changed
        });
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let relay = self.relay.clone();
        let media = self.media;
        let task = tokio::spawn(inbound(track, relay, media));
        let old = self
            .inbound
            .lock()
            .map(|mut slot| slot.replace(task))
            .ok()
            .flatten();
        if let Some(old) = old {
            old.abort();
        }
    }
}

/// The browser's packets, from the peer connection to the media leg.
async fn inbound(track: Arc<dyn TrackRemote>, relay: Arc<UdpSocket>, media: SocketAddr) {
    let mut buf = [0u8; MAX_PACKET];
    while let Some(ev) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(pkt) = ev else {
            continue;
        };
        let Ok(n) = pkt.marshal_to(&mut buf) else {
            continue;
        };
        if let Some(bytes) = buf.get(..n) {
            // Never blocks: a full socket buffer drops the packet, as a
            // network would.
            let _ = relay.try_send_to(bytes, media);
        }
    }
}

/// The media leg's packets, from the relay socket to the browser's track,
/// once the browser is connected (before, DTLS has no keys: the packets
/// are dropped here rather than refused by the stack one by one).
async fn outbound(
    relay: Arc<UdpSocket>,
    media: SocketAddr,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    state: watch::Receiver<PeerState>,
) {
    let mut buf = [0u8; MAX_PACKET];
    // Read from the state's watch only until connected: not per packet.
    let mut connected = false;
    loop {
        let Ok((n, from)) = relay.recv_from(&mut buf).await else {
            return;
        };
        if from != media {
            continue;
        }
        if !connected {
            connected = *state.borrow() == PeerState::Connected;
            if !connected {
                continue;
            }
        }
        let mut bytes = buf.get(..n).unwrap_or(&[]);
        let Ok(mut pkt) = rtp::packet::Packet::unmarshal(&mut bytes) else {
            continue;
        };
        pkt.header.ssrc = ssrc;
        if track.write_rtp(pkt).await.is_err() {
            // Not bound yet (before the answer) or closed: the packet is
            // dropped; the leg's playout goes on.
            continue;
        }
    }
}

fn g711(mime: &str, pt: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: 8000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
    }
}

/// PCMU, PCMA and telephone-event, nothing else: no transcoding anywhere.
fn media_engine() -> Result<MediaEngine, WebRtcError> {
    use rtc::peer_connection::configuration::media_engine::{
        MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_TELEPHONE_EVENT,
    };
    let mut m = MediaEngine::default();
    m.register_codec(g711(MIME_TYPE_PCMU, PCMU), RtpCodecKind::Audio)?;
    m.register_codec(g711(MIME_TYPE_PCMA, PCMA), RtpCodecKind::Audio)?;
    let mut dtmf = g711(MIME_TYPE_TELEPHONE_EVENT, TELEPHONE_EVENT);
    dtmf.rtp_codec.sdp_fmtp_line = "0-16".to_owned();
    m.register_codec(dtmf, RtpCodecKind::Audio)?;
    Ok(m)
}

fn pcmu_track(ssrc: u32) -> TrackLocalStaticRTP {
    use rtc::peer_connection::configuration::media_engine::MIME_TYPE_PCMU;
    let codec = g711(MIME_TYPE_PCMU, PCMU).rtp_codec;
    TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "permanence".to_owned(),
        "permanence-audio".to_owned(),
        "permanence-audio".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            active: true,
            ..Default::default()
        }],
    ))
}

impl Peer {
    /// A new peer relaying to and from the media leg at `media`, and our
    /// SDP offer for the browser (candidates gathered: no trickle ICE).
    /// The engine calls the browser.
    pub async fn offer(
        settings: WebRtcSettings,
        media: SocketAddr,
    ) -> Result<(Peer, String), WebRtcError> {
        Self::open(settings, media, None).await
    }

    /// A new peer answering the browser's `offer` (the browser calls out:
    /// its INVITE's SDP), and our SDP answer. The offer must accept PCMU.
    pub async fn answer(
        settings: WebRtcSettings,
        media: SocketAddr,
        offer: &str,
    ) -> Result<(Peer, String), WebRtcError> {
        if !crate::has_payload_type(offer, PCMU) {
            return Err(WebRtcError::NoCommonCodec);
        }
        Self::open(settings, media, Some(offer)).await
    }

    /// Builds the peer; offers, or answers `remote_offer`.
    async fn open(
        settings: WebRtcSettings,
        media: SocketAddr,
        remote_offer: Option<&str>,
    ) -> Result<(Peer, String), WebRtcError> {
        let relay_ip = match settings.relay_ip {
            ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        let relay = Arc::new(UdpSocket::bind(SocketAddr::new(relay_ip, 0)).await?);
        let relay_addr = relay.local_addr()?;
        let (gathered_tx, gathered) = watch::channel(false);
        let (state_tx, state) = watch::channel(PeerState::Connecting);
        let handler = Arc::new(Handler {
            gathered: gathered_tx,
            state: state_tx,
            relay: relay.clone(),
            media,
            inbound: std::sync::Mutex::new(None),
        });
        let pc = build(settings, handler.clone(), remote_offer.is_none()).await?;
        let ssrc = rand::random::<u32>();
        let track = Arc::new(pcmu_track(ssrc));
        let sdp = match negotiate(&pc, track.clone(), remote_offer, gathered).await {
            Ok(sdp) => sdp,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        let outbound = tokio::spawn(outbound(relay, media, track, ssrc, state.clone()));
        let peer = Peer {
            pc,
            relay_addr,
            state,
            outbound,
            handler,
        };
        Ok((peer, sdp))
    }

    /// Takes the browser's answer (from the 200). The answer must accept
    /// PCMU, which the relay speaks.
    pub async fn accept_answer(&self, sdp: &str) -> Result<(), WebRtcError> {
        if !crate::has_payload_type(sdp, PCMU) {
            return Err(WebRtcError::NoCommonCodec);
        }
        let desc = RTCSessionDescription::answer(sdp.to_owned())?;
        self.pc.set_remote_description(desc).await?;
        Ok(())
    }

    /// Answers a new offer of the browser (a re-INVITE: hold, resume).
    pub async fn answer_offer(&self, sdp: &str) -> Result<String, WebRtcError> {
        let desc = RTCSessionDescription::offer(sdp.to_owned())?;
        self.pc.set_remote_description(desc).await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        match self.pc.local_description().await {
            Some(d) => Ok(d.sdp),
            None => Err(WebRtcError::Stack("no local description".into())),
        }
    }

    /// Where the media leg sends what the browser must hear (the leg's
    /// remote address); the browser's audio comes from there too.
    pub fn relay_addr(&self) -> SocketAddr {
        self.relay_addr
    }

    /// The connection's state now.
    pub fn state(&self) -> PeerState {
        *self.state.borrow()
    }

    /// Resolves once the browser is [`PeerState::Gone`].
    pub async fn gone(&self) {
        self.gone_signal().await
    }

    /// The same as [`Peer::gone`], without borrowing the peer (to wait in
    /// a `select!` beside its owner's other inputs).
    pub fn gone_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.state.clone();
        async move {
            let _ = rx.wait_for(|s| *s == PeerState::Gone).await;
        }
    }

    /// Resolves once media flows (or the browser is gone: check
    /// [`Peer::state`]).
    pub async fn connected(&self) {
        let mut rx = self.state.clone();
        let _ = rx.wait_for(|s| *s != PeerState::Connecting).await;
    }

    /// Closes the peer connection (DTLS close_notify to the browser) and
    /// the relay.
    pub async fn close(self) {
        self.outbound.abort();
        if let Ok(mut slot) = self.handler.inbound.lock() {
            if let Some(t) = slot.take() {
                t.abort();
            }
        }
        let _ = self.pc.close().await;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.outbound.abort();
        if let Ok(mut slot) = self.handler.inbound.lock() {
            if let Some(t) = slot.take() {
                t.abort();
            }
        }
        let pc = self.pc.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// Adds our track, offers or answers `remote_offer`, waits for our
/// candidate, and returns our SDP.
async fn negotiate(
    pc: &Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    remote_offer: Option<&str>,
    mut gathered: watch::Receiver<bool>,
) -> Result<String, WebRtcError> {
    pc.add_track(track as Arc<dyn TrackLocal>).await?;
    let local = match remote_offer {
        None => pc.create_offer(None).await?,
        Some(offer) => {
            pc.set_remote_description(RTCSessionDescription::offer(offer.to_owned())?)
                .await?;
            pc.create_answer(None).await?
        }
    };
    pc.set_local_description(local).await?;
    let done = matches!(
        tokio::time::timeout(GATHERING_TIMEOUT, gathered.wait_for(|g| *g)).await,
        Ok(Ok(_))
    );
    if !done {
        return Err(WebRtcError::GatheringTimeout);
    }
    match pc.local_description().await {
        Some(d) => Ok(d.sdp),
        None => Err(WebRtcError::Stack("no local description".into())),
    }
}

/// The peer connection. `offerer`: we offer first (`setup:actpass`), the
/// browser answers `active` and we are the DTLS server for the life of the
/// connection, so our answers to its later offers (hold, resume) must say
/// `passive`: a browser refuses an answer that would reverse the roles.
async fn build(
    settings: WebRtcSettings,
    handler: Arc<Handler>,
    offerer: bool,
) -> Result<Arc<dyn PeerConnection>, WebRtcError> {
    let mut media = media_engine()?;
    let registry =
        webrtc::peer_connection::register_default_interceptors(Registry::new(), &mut media)?;
    let mut se = SettingEngineBuilder::new()
        .with_include_loopback_candidate(true)
        .with_ice_timeouts(
            Some(settings.disconnected_after),
            Some(settings.failed_after),
            Some(Duration::from_secs(2)),
        );
    if offerer {
        se = se.with_answering_dtls_role(rtc::peer_connection::transport::RTCDtlsRole::Server);
    }
    if let Some(public) = settings.advertise {
        se = se.with_nat_1to1_ips(
            vec![public.to_string()],
            rtc::peer_connection::transport::RTCIceCandidateType::Host,
        );
    }
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(se.build())
        .with_interceptor_registry(registry)
        .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
        .with_udp_addrs(vec![SocketAddr::new(settings.ice_ip, 0).to_string()])
        .build()
        .await?;
    Ok(Arc::new(pc))
}
