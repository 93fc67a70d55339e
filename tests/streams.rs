//! SIP over TCP and TLS: connection caps, idle timeout, keep-alives, the
//! descriptor limit, and calls over TLS.

mod common;
