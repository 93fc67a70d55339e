//! Calendars: practice opening hours and agent shifts.

use permanence_calendar::Schedule;

use crate::io::Event;

use super::idx::{AgentIdx, PracticeIdx};
use super::time::{ms_of, time_of, Ms};
use super::timers::TimerKind;
use super::Dispatcher;

/// How far ahead a schedule with no change in sight is looked at again.
pub(super) const RECHECK_MS: Ms = 30 * 86_400_000;

/// When `s` next changes between open and closed (`None`: never, as far
/// as the calendar looks ahead; a re-check is then scheduled anyway, so a
/// schedule that only changes beyond the horizon is still followed).
pub(super) fn schedule_next(s: &Schedule, now: Ms) -> Option<Ms> {
    if s.always_open {
        return None;
    }
    Some(s.next_change(time_of(now)).map_or(now + RECHECK_MS, ms_of))
}

impl Dispatcher {
    /// Whether the practice is open now (cached until its next change).
    pub(super) fn practice_open(&mut self, pi: PracticeIdx) -> bool {
        let now = self.now;
        let p = &mut self.practices[pi];
        let Some(h) = &p.hours else { return true };
        if now >= p.open_from && now < p.open_until {
            return p.open;
        }
        p.open = h.is_open(time_of(now));
        p.open_from = now;
        p.open_until = schedule_next(h, now).unwrap_or(Ms::MAX);
        p.open
    }

    /// Evaluates the agent's shift now and sets the timer of its next
    /// boundary; emits `ShiftChanged` if it differs from `previous`.
    pub(super) fn init_shift(&mut self, ai: AgentIdx, previous: Option<bool>) {
        let now = self.now;
        let a = &mut self.agents[ai];
        let (in_shift, next) = match &a.shift {
            None => (true, None),
            Some(s) => (s.is_open(time_of(now)), schedule_next(s, now)),
        };
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
}
