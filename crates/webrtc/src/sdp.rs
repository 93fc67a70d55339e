//! The few facts the engine reads in a browser's SDP, by plain text: the
//! WebRTC stack parses it for real.

/// The direction of the first audio stream of an SDP (RFC 3264 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioDirection {
    /// Both ways (the default).
    SendRecv,
    /// The SDP's author only sends (it puts the other party on hold).
    SendOnly,
    /// The SDP's author only receives.
    RecvOnly,
    /// No media either way (hold).
    Inactive,
}

impl AudioDirection {
    /// Whether the author of the SDP holds the call (sendonly or inactive).
    pub fn is_hold(self) -> bool {
        matches!(self, AudioDirection::SendOnly | AudioDirection::Inactive)
    }
}

/// The lines of the first `m=audio` section (up to the next `m=`), then the
/// session-level lines before any `m=`.
fn sections(sdp: &str) -> (Vec<&str>, Vec<&str>) {
    let mut session = Vec::new();
    let mut audio = Vec::new();
    let mut state = 0u8; // 0 session, 1 in first audio, 2 after it
    for line in sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            state = match state {
                0 | 2 if line.starts_with("m=audio") && audio.is_empty() => 1,
                _ => 2,
            };
            if state == 1 {
                audio.push(line);
            }
            continue;
        }
        match state {
            0 => session.push(line),
            1 => audio.push(line),
            _ => {}
        }
    }
    (audio, session)
}

/// The direction of the first audio stream (`a=sendonly`... in its section,
/// else at session level, else sendrecv). A port of 0 is inactive.
pub fn audio_direction(sdp: &str) -> AudioDirection {
    let (audio, session) = sections(sdp);
    if let Some(m) = audio.first() {
        if m.split_whitespace().nth(1) == Some("0") {
            return AudioDirection::Inactive;
        }
    }
    let find = |lines: &[&str]| {
        lines.iter().find_map(|l| match *l {
            "a=sendrecv" => Some(AudioDirection::SendRecv),
            "a=sendonly" => Some(AudioDirection::SendOnly),
            "a=recvonly" => Some(AudioDirection::RecvOnly),
            "a=inactive" => Some(AudioDirection::Inactive),
            _ => None,
        })
    };
    find(&audio)
        .or_else(|| find(&session))
        .unwrap_or(AudioDirection::SendRecv)
}

/// Whether the first audio stream lists payload type `pt`.
pub fn has_payload_type(sdp: &str, pt: u8) -> bool {
    let (audio, _) = sections(sdp);
    let want = pt.to_string();
    audio
        .first()
        .is_some_and(|m| m.split_whitespace().skip(3).any(|f| f == want))
}

/// Whether an SDP is a WebRTC one: DTLS-SRTP profile (`UDP/TLS/RTP/SAVPF`)
/// with a fingerprint.
pub fn is_webrtc_offer(sdp: &str) -> bool {
    let (audio, session) = sections(sdp);
    let dtls = audio
        .first()
        .is_some_and(|m| m.contains("UDP/TLS/RTP/SAVP"));
    let fingerprint = audio
        .iter()
        .chain(session.iter())
        .any(|l| l.starts_with("a=fingerprint:"));
    dtls && fingerprint
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROWSER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=fingerprint:sha-256 AA:BB\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 0 8 101\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn reads_direction_from_the_audio_section() {
        assert_eq!(audio_direction(BROWSER), AudioDirection::SendOnly);
        assert!(audio_direction(BROWSER).is_hold());
        let resumed = BROWSER.replace("a=sendonly", "a=sendrecv");
        assert_eq!(audio_direction(&resumed), AudioDirection::SendRecv);
        let none = BROWSER.replace("a=sendonly\r\n", "");
        assert_eq!(audio_direction(&none), AudioDirection::SendRecv);
        let session_level = "v=0\r\na=inactive\r\nm=audio 9 RTP/AVP 0\r\n";
        assert_eq!(audio_direction(session_level), AudioDirection::Inactive);
        let port0 = "v=0\r\nm=audio 0 RTP/AVP 0\r\na=sendrecv\r\n";
        assert_eq!(audio_direction(port0), AudioDirection::Inactive);
    }

    #[test]
    fn only_the_first_audio_section_counts() {
        let two = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 8\r\na=recvonly\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendonly\r\n";
        assert_eq!(audio_direction(two), AudioDirection::RecvOnly);
        assert!(!has_payload_type(two, 0));
        assert!(has_payload_type(two, 8));
    }

    #[test]
    fn finds_payload_types_and_webrtc() {
        assert!(has_payload_type(BROWSER, 0));
        assert!(has_payload_type(BROWSER, 101));
        assert!(!has_payload_type(BROWSER, 9));
        assert!(is_webrtc_offer(BROWSER));
        assert!(!is_webrtc_offer("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"));
        assert!(!is_webrtc_offer(""));
        assert!(!has_payload_type("garbage", 0));
        assert_eq!(audio_direction("garbage"), AudioDirection::SendRecv);
    }
}
