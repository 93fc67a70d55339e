//! The datagram guard and the gate's classification: every UDP datagram
//! goes through them before the SIP stack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use permanence_sip::{gate, guard};
use std::net::SocketAddr;

fuzz_target!(|data: &[u8]| {
    let src: SocketAddr = SocketAddr::from(([192, 0, 2, 1], 5060));
    let _ = guard::check_datagram(data, src);
    let _ = gate::classify(data);
    let _ = guard::stateless_reply(data, src, 407, "Proxy Authentication Required", &[], "");
});
