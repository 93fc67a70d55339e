//! Runtime state of a practice: its resolved policy, routing steps, routes
//! and waiting calls.

use permanence_calendar::Schedule;

use crate::config::{OverflowTarget, Strategy};
use crate::ids::PracticeId;

use super::time::Ms;

/// A resolved routing selector.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sel {
    pub(super) dedicated: bool,
    pub(super) pool: Option<u32>,
    pub(super) skill: Option<(u32, u8)>,
    pub(super) lang: Option<u32>,
}

#[derive(Debug, Clone)]
pub(super) struct PracticeRt {
    pub(super) id: PracticeId,
    pub(super) hours: Option<Schedule>,
    /// Cached open state valid on `[open_from, open_until)`.
    pub(super) open: bool,
    pub(super) open_from: Ms,
    pub(super) open_until: Ms,
    pub(super) steps: Vec<(Ms, Sel)>,
    /// Routes by requirement id (index 0 = no requirement).
    pub(super) routes: Vec<(u32, u32)>,
    pub(super) priority: i32,
    pub(super) max_wait_ms: Option<Ms>,
    pub(super) overflow: OverflowTarget,
    pub(super) overflow_pool: Option<u32>,
    pub(super) wrap_ms: Ms,
    pub(super) ring_ms: Ms,
    pub(super) max_strikes: u32,
    pub(super) aht_ms: f64,
    pub(super) rank_skill: Option<u32>,
    pub(super) strategy: Strategy,
    /// Slots of waiting and ringing calls.
    pub(super) calls: Vec<u32>,
    /// Dedicated agents.
    pub(super) dedicated: Vec<u32>,
}
