//! Calendars: practice opening hours and agent shifts, on the wall clock.
//!
//! The dispatcher's clock (`Dispatcher::now`) is *engine time*: the driver
//! may feed it from a monotonic clock, so that a step of the system clock
//! never fires a ring, relax, max-wait, wrap-up or back-off timer early or
//! late. Calendars are evaluated at the *wall time* `now + wall_offset`,
//! where the offset is what the driver last reported with
//! [`Dispatcher::set_wall_clock`] (0 until then: engine time is wall time).
//! A calendar boundary found on the wall clock at `w` is scheduled on the
//! engine timeline at `w - wall_offset`; when the offset changes, the cached
//! practice states are dropped and every shift is re-evaluated
//! (`Dispatcher::wall_clock_moved`). No other timer moves.

use chrono::{DateTime, TimeDelta, Utc};
use permanence_calendar::Schedule;

use crate::io::Event;

use super::idx::{AgentIdx, PracticeIdx};
use super::time::{ms_of, time_of, Ms};
use super::timers::TimerKind;
use super::Dispatcher;

/// How far ahead a schedule with no change in sight is looked at again.
pub(super) const RECHECK_MS: Ms = 30 * 86_400_000;

/// When `s` next changes between open and closed, after wall time `wall`
/// (`None`: never, as far as the calendar looks ahead; a re-check is then
/// scheduled anyway, so a schedule that only changes beyond the horizon is
/// still followed).
pub(super) fn schedule_next(s: &Schedule, wall: Ms) -> Option<Ms> {
    if s.always_open {
        return None;
    }
    Some(
        s.next_change(time_of(wall))
            .map_or(wall + RECHECK_MS, ms_of),
    )
}

impl Dispatcher {
    /// The wall time now.
    fn wall_now(&self) -> Ms {
        self.now.saturating_add(self.wall_offset)
    }

    /// The wall time at engine time `t` (queries).
    pub(super) fn wall_at(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.checked_add_signed(TimeDelta::milliseconds(self.wall_offset))
            .unwrap_or(t)
    }

    /// The wall time at engine time `t`, in ms (queries).
    pub(super) fn wall_at_ms(&self, t: Ms) -> Ms {
        t.saturating_add(self.wall_offset)
    }

    /// Whether the practice is open now (cached until its next change, on
    /// the wall clock).
    pub(super) fn practice_open(&mut self, pi: PracticeIdx) -> bool {
        let wall = self.wall_now();
        let p = &mut self.practices[pi];
        let Some(h) = &p.hours else { return true };
        if wall >= p.open_from && wall < p.open_until {
            return p.open;
        }
        p.open = h.is_open(time_of(wall));
        p.open_from = wall;
        p.open_until = schedule_next(h, wall).unwrap_or(Ms::MAX);
        p.open
    }

    /// Evaluates the agent's shift now and sets the timer of its next
    /// boundary; emits `ShiftChanged` if it differs from `previous`.
    pub(super) fn init_shift(&mut self, ai: AgentIdx, previous: Option<bool>) {
        let (wall, offset) = (self.wall_now(), self.wall_offset);
        let a = &mut self.agents[ai];
        let (in_shift, next) = match &a.shift {
            None => (true, None),
            Some(s) => (s.is_open(time_of(wall)), schedule_next(s, wall)),
        };
        // On the engine timeline.
        let next = next.map(|w| w.saturating_sub(offset));
        a.in_shift = in_shift;
        a.shift_next = next;
        if let Some(prev) = previous {
            if prev != in_shift {
                let id = a.id.clone();
                self.emit(Event::ShiftChanged {
                    agent: id,
                    in_shift,
                });
            }
        }
        if let Some(at) = next {
            self.push_timer(at, TimerKind::Shift { agent: ai });
        }
    }

    /// A shift boundary: the agent enters or leaves its shift (an agent
    /// entering it counts as idle from now) and is dispatched if it can be.
    pub(super) fn on_shift_boundary(&mut self, ai: AgentIdx) {
        let was = self.agents[ai].in_shift;
        self.init_shift(ai, Some(was));
        let a = &mut self.agents[ai];
        if a.in_shift && !was {
            a.idle_since = self.now;
        }
        self.refresh_agent(ai);
    }

    /// The wall-clock offset changed: cached opening states are dropped and
    /// every shift is re-evaluated as at a shift boundary (`ShiftChanged`,
    /// new shift timer, dispatch).
    pub(super) fn wall_clock_moved(&mut self) {
        for p in self.practices.iter_mut() {
            p.forget_open_state();
        }
        for ai in self.agents.indices() {
            self.on_shift_boundary(ai);
        }
    }
}
