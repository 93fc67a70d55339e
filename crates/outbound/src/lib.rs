//! Outbound calls placed by telesecretaries, as pure logic.
//!
//! - [`dial`]: what the agent dialled (`*8<practice code>*<number>` or a
//!   bare number);
//! - [`destination`]: what kind of number that is in the French plan
//!   (emergency, fixed, mobile, freephone, shared cost, premium, short
//!   code, international);
//! - [`allow`]: allow-lists of destination classes and numbers, the
//!   toll-fraud guard (per practice and per agent);
//!
//! Nothing here touches a socket, a clock or a file.

#![forbid(unsafe_code)]

pub mod allow;
pub mod destination;
pub mod dial;

pub use allow::AllowList;
pub use destination::{classify, Destination, DestinationClass, InvalidNumber};
pub use dial::{parse_dialled, DialRequest};
