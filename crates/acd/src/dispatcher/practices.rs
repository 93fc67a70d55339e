//! Runtime state of a practice: its policy resolved against the settings,
//! its routing steps and routes, its cached open state and its waiting and
//! ringing calls. (Opening hours are evaluated in `calendar.rs`.)

use permanence_calendar::Schedule;

use crate::config::{OverflowTarget, Strategy};
use crate::ids::PracticeId;

use super::idx::{AgentIdx, LangIdx, PoolIdx, ReqIdx, RouteIdx, SkillIdx, SlotIdx};
use super::index::{SkillLevel, Target};
use super::time::Ms;

/// A resolved routing selector.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sel {
    pub(super) dedicated: bool,
    pub(super) pool: Option<PoolIdx>,
    pub(super) skill: Option<SkillLevel>,
    pub(super) lang: Option<LangIdx>,
}

#[derive(Debug, Clone)]
pub(super) struct PracticeRt {
    pub(super) id: PracticeId,
    pub(super) hours: Option<Schedule>,
    /// Cached open state, valid while the wall clock is in
    /// `[open_from, open_until)`.
    pub(super) open: bool,
    pub(super) open_from: Ms,
    pub(super) open_until: Ms,
    /// (after_ms, selector) of each routing step.
    pub(super) steps: Vec<(Ms, Sel)>,
    /// Routes by requirement ([`ReqIdx::EMPTY`] first).
    pub(super) routes: Vec<(ReqIdx, RouteIdx)>,
    /// Routes of transferred calls, by target and requirement
    /// (`Dispatcher::target_route`).
    pub(super) target_routes: Vec<(Target, ReqIdx, RouteIdx)>,
    pub(super) priority: i32,
    pub(super) max_wait_ms: Option<Ms>,
    pub(super) overflow: OverflowTarget,
    pub(super) overflow_pool: Option<PoolIdx>,
    pub(super) wrap_ms: Ms,
    pub(super) ring_ms: Ms,
    pub(super) max_strikes: u32,
    /// Average handle time (exponentially weighted), in ms.
    pub(super) aht_ms: f64,
    pub(super) rank_skill: Option<SkillIdx>,
    pub(super) strategy: Strategy,
    /// Slots of waiting and ringing calls.
    pub(super) calls: Vec<SlotIdx>,
    /// Dedicated agents.
    pub(super) dedicated: Vec<AgentIdx>,
}

impl PracticeRt {
    /// Forgets the cached open state (the wall clock moved).
    pub(super) fn forget_open_state(&mut self) {
        self.open_from = Ms::MAX;
        self.open_until = Ms::MIN;
    }
}
