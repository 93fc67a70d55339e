//! Outbound calls placed by telesecretaries, as pure logic.
//!
//! - [`dial`]: what the agent dialled (`*8<practice code>*<number>` or a
//!   bare number);
//! - [`destination`]: what kind of number that is in the French plan
//!   (emergency, fixed, mobile, freephone, shared cost, premium, short
//!   code, international);
//! - [`allow`]: allow-lists of destination classes and numbers, the
//!   toll-fraud guard (per practice and per agent);
//! - [`decide`]: the verdict on an agent's call (which practice it goes
//!   out as, or why it is refused);
//! - [`call`]: the outbound call itself, a state machine driven by
//!   `(input, now)` like the inbound call core.
//!
//! Nothing here touches a socket, a clock or a file.

#![forbid(unsafe_code)]

pub mod allow;
pub mod call;
pub mod decide;
pub mod destination;
pub mod dial;

pub use allow::AllowList;
pub use allow::AllowListError;
pub use call::{CallLimits, OutboundCall, Outcome};
pub use decide::{decide, DialFacts, Placement, PracticeView, Refusal};
pub use destination::{classify, Destination, DestinationClass, InvalidNumber};
pub use dial::{parse_dialled, DialRequest};
