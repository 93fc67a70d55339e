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
//!   agent who logs out, pauses, becomes unreachable or starts an outbound
//!   call are withdrawn. The call is re-dispatched keeping its place.
//! * **Outbound calls**: an agent with an outbound call in progress
//!   (counted: one may be on hold while consulting) gets no offer, whatever
//!   its state, which does not change; when the last one ends an available
//!   agent takes a waiting call at once.
//! * **Opening hours**: a call for a closed practice is not queued (`Closed`).
//!   Calls already waiting when the practice closes stay and are served:
//!   they called during opening hours.
//! * **Shifts**: an agent outside its shift gets no offer; one whose shift
//!   ends during a call finishes it.
//! * **Max wait** sends the call to its overflow target; a pool target keeps
//!   the call queued (same place) and adds that pool's agents.
//! * **Re-arrivals** (a callback request re-queued after a restart or a
//!   failed try) carry their original join time
//!   ([`CallArrival::joined_at`]): it sets their place, their routing steps
//!   and the waits reported; the maximum wait runs from the re-arrival, so
//!   it never overflows them at once.
//! * **Transfers back to the dispatcher** (an agent let the call go): a
//!   `head` arrival goes before every call waiting in its practice's queue
//!   ([`CallArrival::head`]); a `target` arrival may only be offered to
//!   that agent or the members of that pool ([`CallArrival::target`]), the
//!   routing steps never widen it, the maximum wait and overflow still
//!   apply.
//! * **Call end**: [`Input::CallEnded`] puts the agent in wrap-up;
//!   [`Input::CallReleased`] (a callback try the patient did not answer)
//!   frees the agent at once.
//! * Every decision is an [`Event`]; every call that enters ends with exactly
//!   one terminal event: `Answered` (then `CallCompleted`), `Abandoned`,
//!   `Overflowed` or `Closed`.
//! * **Wall clock**: `now` may be a monotonic engine time; calendars are
//!   evaluated at the wall time the driver reports with
//!   [`Dispatcher::set_wall_clock`], so a step of the system clock moves no
//!   ring, relax, max-wait, wrap-up or back-off timer.
//!
//! Where things live (`src/`):
//!
//! ```text
//! lib.rs            this overview and the public re-exports
//! config/mod.rs     AcdConfig: settings, agents, pools, practice policies, schedules
//! config/validate.rs  AcdConfig::validate (ids, references, ranges)
//! ids.rs            AgentId, PracticeId, PoolId, PauseReason, CallId
//! io.rs             Input, Output, Action, Event and their parts
//! snapshot.rs       read-only views: CallSnapshot, QueueSnapshot, AgentSnapshot
//! error.rs          AcdError
//! heap.rs           the lazy-deletion heap behind every index; call (and head
//!                   call) and agent scores
//! dispatcher/       the state machine, one concern per file:
//!   mod.rs          Dispatcher, new, handle_input / handle_timeout / set_wall_clock,
//!                   poll_timeout / poll_output
//!   idx.rs          typed table indices (AgentIdx, SlotIdx, GroupIdx, ...) and IdxVec
//!   time.rs         internal time (ms) and conversions
//!   build.rs        configuration -> runtime tables (memberships, agents, practices)
//!   index.rs        the routing index: interners, groups, requirement keys, routes
//!                   (targeted routes of transferred calls included)
//!   practices.rs    practice runtime state
//!   agents.rs       agent runtime state; login, logout, pause, reachability,
//!                   outbound calls, back-off
//!   calls.rs        call runtime state and slots; arrival, abandon, answer, end,
//!                   release, priority
//!   offers.rs       matching calls and agents; offer, withdraw, requeue, overflow
//!   timers.rs       the timer table; ring timeout, relax, max wait, wrap-up, back-off
//!   calendar.rs     opening hours and shifts on the wall clock
//!   reconfigure.rs  applying a new configuration in flight
//!   estimate.rs     the estimated-wait computation
//!   queries.rs      snapshots, eligible agents, estimated wait, is_open
//!   invariants.rs   check_invariants (tests)
//! ```

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
    AbandonPhase, Action, AgentState, ArrivalTarget, CallArrival, CancelReason, ChangeReason,
    Event, Input, OfferFailure, Output, OverflowReason, SkillRequirement,
};
pub use permanence_calendar::Schedule;
pub use snapshot::{
    AgentSnapshot, CallPhase, CallSnapshot, EligibleAgents, Presence, QueueSnapshot,
};
