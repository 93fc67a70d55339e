//! A step of the wall clock (NTP correcting it by an hour, forward or back)
//! fires no ring or max-wait timer early and delays none: the dispatcher's
//! driver runs on engine time (monotonic). Virtual tokio time; the wall
//! clock is a test clock stepped by hand.

use std::sync::Arc;
use std::time::Duration;

use permanence_acd::{
    AcdConfig, AgentProfile, CallArrival, CallId, Dispatcher, Input, OverflowTarget, PracticePolicy,
};
use permanence_engine::clock::{Clock, SteppedWall};
use permanence_engine::dispatch::{self, CallCmd, DispatchHandle, DispatchMsg};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const RING: u64 = 20;
const MAX_WAIT: u64 = 60;

/// One always-open practice with one dedicated agent; rings last 20 s; a
/// call waits at most 60 s, then goes to voicemail.
fn config() -> AcdConfig {
    let mut alice = AgentProfile::new("alice");
    alice.logged_in = true;
    let mut p = PracticePolicy::new("martin");
    p.dedicated_agents = vec!["alice".into()];
    p.ring_timeout = Some(Duration::from_secs(RING));
    p.max_wait = Some(Duration::from_secs(MAX_WAIT));
    p.overflow = OverflowTarget::Voicemail;
    let mut c = AcdConfig {
        agents: vec![alice],
        practices: vec![p],
        ..AcdConfig::default()
    };
    c.settings.rona_backoff = Duration::from_secs(3600);
    c.settings.max_no_answer_strikes = 100;
    c
}

/// Opening hours (UTC) covering the current hour and the next one only.
fn open_two_hours_from_now() -> permanence_acd::Schedule {
    use chrono::Timelike;
    let h = chrono::Utc::now().hour();
    let range = format!("{:02}:00-{:02}:00", h, (h + 2) % 24);
    let spec = permanence_acd::ScheduleSpec {
        tz: "UTC".into(),
        always_open: false,
        weekly: [("daily".to_string(), vec![range])].into_iter().collect(),
        holidays: Default::default(),
        exceptions: Vec::new(),
    };
    spec.to_schedule().expect("schedule")
}

struct Harness {
    wall: Arc<SteppedWall>,
    dispatch: DispatchHandle,
    _cancel: CancellationToken,
}

impl Harness {
    fn start() -> Self {
        Self::with(config())
    }

    fn with(config: AcdConfig) -> Self {
        let wall = Arc::new(SteppedWall::default());
        let clock = Clock::new(wall.clone());
        let cancel = CancellationToken::new();
        let d = Dispatcher::new(config).expect("valid configuration");
        let (dispatch, _task) = dispatch::start(d, Vec::new(), None, clock, cancel.clone());
        Self {
            wall,
            dispatch,
            _cancel: cancel,
        }
    }

    fn reachable(&self, reachable: bool) {
        self.dispatch.input(Input::AgentReachability {
            agent: "alice".into(),
            reachable,
        });
    }

    fn arrive(&self, call: u64) -> UnboundedReceiver<CallCmd> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.dispatch.send(DispatchMsg::Arrive {
            arrival: CallArrival::new(CallId(call), "martin"),
            tx,
        });
        rx
    }
}

/// Waits for the next command and says how long after `since` it came.
async fn next(rx: &mut UnboundedReceiver<CallCmd>, since: Instant) -> (CallCmd, Duration) {
    let cmd = tokio::time::timeout(Duration::from_secs(7200), rx.recv())
        .await
        .expect("a command within two hours")
        .expect("channel open");
    (cmd, since.elapsed())
}

async fn ring_times_out_on_time(step: chrono::Duration) {
    let h = Harness::start();
    h.reachable(true);
    let offered_at = Instant::now();
    let mut rx = h.arrive(1);
    let (cmd, _) = next(&mut rx, offered_at).await;
    assert!(matches!(cmd, CallCmd::Offer { .. }), "{cmd:?}");
    // Five seconds into the ring, the wall clock jumps.
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.wall.step(step);
    let (cmd, after) = next(&mut rx, offered_at).await;
    assert!(matches!(cmd, CallCmd::CancelOffer { .. }), "{cmd:?}");
    assert_eq!(
        after,
        Duration::from_secs(RING),
        "ring timeout after a wall step of {step}"
    );
}

async fn max_wait_on_time(step: chrono::Duration) {
    let h = Harness::start();
    // Nobody to offer the call to: it waits until its max wait.
    h.reachable(false);
    let queued_at = Instant::now();
    let mut rx = h.arrive(2);
    tokio::time::sleep(Duration::from_secs(30)).await;
    h.wall.step(step);
    let (cmd, after) = next(&mut rx, queued_at).await;
    assert!(
        matches!(
            cmd,
            CallCmd::Overflow(permanence_types::OverflowKind::Voicemail)
        ),
        "{cmd:?}"
    );
    assert_eq!(
        after,
        Duration::from_secs(MAX_WAIT),
        "max wait after a wall step of {step}"
    );
}

#[tokio::test(start_paused = true)]
async fn ring_timeout_ignores_a_wall_clock_step_forward() {
    ring_times_out_on_time(chrono::Duration::hours(1)).await;
}

#[tokio::test(start_paused = true)]
async fn ring_timeout_ignores_a_wall_clock_step_back() {
    ring_times_out_on_time(chrono::Duration::hours(-1)).await;
}

#[tokio::test(start_paused = true)]
async fn max_wait_ignores_a_wall_clock_step_forward() {
    max_wait_on_time(chrono::Duration::hours(1)).await;
}

#[tokio::test(start_paused = true)]
async fn max_wait_ignores_a_wall_clock_step_back() {
    max_wait_on_time(chrono::Duration::hours(-1)).await;
}

/// Opening hours follow the wall clock: after it steps three hours ahead,
/// out of the practice's hours, a new call finds the practice closed.
#[tokio::test(start_paused = true)]
async fn opening_hours_follow_the_wall_clock() {
    let mut c = config();
    c.practices[0].hours = Some(open_two_hours_from_now());
    let h = Harness::with(c);
    h.reachable(true);
    let mut rx = h.arrive(1);
    let (cmd, _) = next(&mut rx, Instant::now()).await;
    assert!(matches!(cmd, CallCmd::Offer { .. }), "open now: {cmd:?}");
    for step in [3, -6] {
        h.wall.step(chrono::Duration::hours(step));
        // The driver looks at the wall clock every second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut rx = h.arrive(10 + step.unsigned_abs());
        let (cmd, _) = next(&mut rx, Instant::now()).await;
        assert!(
            matches!(cmd, CallCmd::Closed),
            "closed after a step of {step} h: {cmd:?}"
        );
    }
}
