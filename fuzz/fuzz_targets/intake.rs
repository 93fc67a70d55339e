//! Intake: which practice a forwarded call is for, from a request that the
//! stack parsed (History-Info, Diversion, Request-URI, To), and the other
//! extractions of the SIP edge (REGISTER view, caller id).
#![no_main]

use libfuzzer_sys::fuzz_target;
use permanence_numbers::Country;
use permanence_sip::{extract, intake};

fuzz_target!(|data: &[u8]| {
    let Ok(rsipstack::sip::SipMessage::Request(req)) = rsipstack::sip::SipMessage::try_from(data)
    else {
        return;
    };
    let ruri = req.uri.to_string();
    let view = extract::intake_view(&req, &ruri);
    let _ = intake::called_numbers(&view, Country::Fr);
    let _ = intake::identify(&view, Country::Fr, |n| (n.as_str().len() % 3 == 0).then_some(&()));
    let _ = extract::caller_id(&req);
    let _ = extract::register_request(
        &req,
        ([192, 0, 2, 1], 5060).into(),
        permanence_sip::extract::via_transport(&req),
    );
});
