//! Sans-IO ACD dispatcher for Permanence.
//!
//! The [`Dispatcher`] routes calls waiting in per-practice queues to
//! telesecretaries (agents). It is a pure state machine: the driver feeds it
//! [`Input`]s and the current time, fires its timers
//! ([`Dispatcher::poll_timeout`] / [`Dispatcher::handle_timeout`]) and carries
//! out the [`Action`]s it polls; [`Event`]s feed metrics and the call log. It
//! never reads a clock, spawns a task or touches a socket, so the simulator
//! drives the very same code on virtual time.
//!
//! Behaviour in short:
//!
//! * **Routing steps** relax over time without the caller losing their place:
//!   a call is eligible for the agents of every step whose `after_secs` has
//!   elapsed, and always keeps its original join time and priority.
//! * **Selection**: an agent becoming available takes the best eligible
//!   waiting call across all practices (higher priority first, then longest
//!   waiting); a call becoming eligible goes to the best available agent
//!   (longest idle by default; most skilled or round robin per practice).
//! * **Offers** time out (ring-no-answer: strike, back-off, auto-pause after
//!   N consecutive strikes); failed offers back the agent off; offers to an
//!   agent who logs out, pauses or becomes unreachable are withdrawn. The
//!   call is re-dispatched keeping its place.
//! * **Opening hours**: a call for a closed practice is not queued (`Closed`).
//!   Calls already waiting when the practice closes stay and are served:
//!   they called during opening hours.
//! * **Shifts**: an agent outside its shift gets no offer; one whose shift
//!   ends during a call finishes it.
//! * **Max wait** sends the call to its overflow target; a pool target keeps
//!   the call queued (same place) and adds that pool's agents.
//! * Every decision is an [`Event`]; every call that enters ends with exactly
//!   one terminal event: `Answered` (then `CallCompleted`), `Abandoned`,
//!   `Overflowed` or `Closed`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod dispatcher;
mod error;
mod heap;
mod ids;
mod io;
mod snapshot;

pub use config::{
    schedule_serde, AcdConfig, AcdSettings, AgentProfile, ExceptionSpec, OverflowTarget, PoolDef,
    PracticePolicy, RoutingStep, ScheduleSpec, Selector, Strategy,
};
pub use dispatcher::Dispatcher;
pub use error::AcdError;
pub use ids::{AgentId, CallId, PauseReason, PoolId, PracticeId};
pub use io::{
    AbandonPhase, Action, AgentState, CallArrival, CancelReason, ChangeReason, Event, Input,
    OfferFailure, Output, OverflowReason, SkillRequirement,
};
pub use permanence_calendar::Schedule;
pub use snapshot::{AgentSnapshot, CallPhase, CallSnapshot, EligibleAgents, QueueSnapshot};
