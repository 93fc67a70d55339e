//! Callbacks that keep the caller's place ("rappelé dans l'heure"), as
//! pure logic.
//!
//! A caller waiting in a practice's queue asks to be called back (or the
//! queue overflows to a callback). The request keeps its place in the
//! dispatcher's queue; when its turn comes the dispatcher offers it to a
//! telesecretary like a call; the engine rings them, and once they answer
//! it dials the patient through the carrier's gateway (the agent hears a
//! ringback tone meanwhile) and bridges the two. A try that does not reach
//! the patient frees the agent at once and the request comes back later,
//! as the practice's [`Policy`] says (so many tries, so far apart).
//!
//! Two cores, both driven by `(input, now)` with `poll_timeout`,
//! `handle_timeout` and `poll_output` like the call cores, and touching no
//! socket, clock or file:
//!
//! - [`book`]: the [`CallbackBook`], **one per engine**: every open request,
//!   its status, tries, next try and deadline; it asks the driver to
//!   persist each change and to queue, release or withdraw requests in the
//!   dispatcher, and reports each try and the final outcome;
//! - [`attempt`]: an [`Attempt`], **one per offer** of the dispatcher: the
//!   agent's leg, then the patient's.
//!
//! How the engine drives them:
//!
//! 1. **Request**: the caller's call core asks for a callback (or its
//!    queue overflows to one): the driver feeds [`book::Input::Add`]; the
//!    dispatcher call becomes the request's, under the request's key.
//! 2. **Offer**: the dispatcher offers the request's call to an agent: the
//!    driver feeds [`book::Input::Offered`], creates an [`Attempt`] and
//!    feeds it [`attempt::Input::Start`]; the SIP legs' news go to the
//!    attempt, the dispatcher's withdrawal as
//!    [`attempt::Input::OfferCancelled`].
//! 3. **Try**: the attempt's [`attempt::Action::ReportAnswered`] becomes the
//!    dispatcher's `OfferAnswered` and [`book::Input::AttemptStarted`]; its
//!    [`attempt::Action::Finished`] becomes
//!    [`book::Input::AttemptFinished`] with the result, or
//!    [`book::Input::OfferEnded`] for [`Outcome::OfferFailed`] (unless the
//!    book withdrew the offer itself and already closed the request).
//!    [`attempt::Action::ReleaseAgent`] and
//!    [`attempt::Action::ReportEnded`] are the dispatcher's `CallReleased`
//!    (agent free at once) and `CallEnded` (wrap-up).
//! 4. **Retry**: the book keeps an unanswered request waiting for its
//!    policy's spacing, then asks for [`book::Action::Enqueue`] with the
//!    original join time: the request is back at its place.
//! 5. **Restart**: the driver writes every [`book::Action::Persist`]; at
//!    start-up it feeds each open request back with
//!    [`book::Input::Restore`].
//! 6. **Operators** cancel a request or mark it handled
//!    ([`book::Input::Cancel`], [`book::Input::Handled`]); the book asks to
//!    [`book::Action::Withdraw`] it from the dispatcher if it is there.
//!    [`CallbackBook::summaries`] feeds the per-practice gauges.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attempt;
pub mod book;

pub use attempt::{
    AgentFailure, Attempt, AttemptResult, AttemptSettings, Outcome, PATIENT_RANG_ENOUGH,
};
pub use book::{
    BookError, CallbackBook, FailReason, Origin, Policy, QueueSummary, Request, Status,
};
