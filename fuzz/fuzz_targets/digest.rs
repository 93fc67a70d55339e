//! Digest authentication headers (parsed by our own code: rsipstack's
//! parser refuses SHA-256), nonce checks and the throttle's inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use permanence_sip::digest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = digest::parse_digest(text) {
        let _ = digest::verify(&p, "00000000000000000000000000000000", "REGISTER");
        let mut m = digest::NonceManager::new([1; 32], std::time::Duration::from_secs(300));
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let _ = m.validate(&p.nonce, now);
        m.wrong_answer(&p.nonce, now);
        let _ = m.consume(&p.nonce, p.nc, now);
    }
});
