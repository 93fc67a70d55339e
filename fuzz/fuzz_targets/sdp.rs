//! SDP offers and answers from carriers and softphones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use permanence_media::sdp::{negotiate, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sd) = SessionDescription::parse(text) {
        if let Ok(n) = negotiate(&sd) {
            let _ = n.is_hold();
        }
    }
});
