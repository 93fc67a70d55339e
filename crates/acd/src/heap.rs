//! A max-heap with lazy deletion, used for every dispatcher index.
//!
//! Entries carry the generation of the entity (call or agent) at push time;
//! an entry is live only while the entity still has that generation and is
//! still in the indexed state. Removing an entity is O(1) (bump its
//! generation); stale entries are dropped when they surface at the top or by
//! an occasional compaction, so memory stays proportional to live entries.

use std::collections::BinaryHeap;

/// One heap entry: higher `score` is better. `I` is the typed index of the
/// entity (an agent or a call slot); it is a `u32` inside, so the entry is
/// as small and compares as fast as with a raw index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry<I> {
    pub score: u128,
    pub idx: I,
    pub gen: u32,
}

/// A lazily cleaned max-heap.
#[derive(Debug, Clone)]
pub(crate) struct LazyHeap<I: Ord> {
    heap: BinaryHeap<Entry<I>>,
}

impl<I: Ord> Default for LazyHeap<I> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
        }
    }
}

impl<I: Ord + Copy> LazyHeap<I> {
    #[inline]
    pub fn push(&mut self, e: Entry<I>) {
        self.heap.push(e);
    }

    /// The best live entry, dropping stale ones on the way.
    #[inline]
    pub fn peek_live(&mut self, mut live: impl FnMut(&Entry<I>) -> bool) -> Option<Entry<I>> {
        while let Some(top) = self.heap.peek() {
            if live(top) {
                return Some(*top);
            }
            self.heap.pop();
        }
        None
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keeps only live entries (O(n)); called when the heap holds more than
    /// about twice its live entries, so the cost is amortized O(1) per push.
    pub fn compact(&mut self, live: impl FnMut(&Entry<I>) -> bool) {
        let mut v = std::mem::take(&mut self.heap).into_vec();
        v.retain(live);
        self.heap = BinaryHeap::from(v);
    }

    /// All entries, live or not, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry<I>> {
        self.heap.iter()
    }
}

/// Layout of a 128-bit score, from the most significant bit:
///
/// ```text
/// call:  | head (1) | priority + 2^31 (32) | time (51) | tie (44) |
/// agent: |     primary (33)                | time (51) | tie (44) |
/// ```
///
/// The head bit puts a call ahead of every call without it, whatever their
/// priority and join time ([`head_call_score`]).
const TIE_BITS: u32 = 44;
const TIE_MASK: u64 = (1 << TIE_BITS) - 1;
/// Bits of a biased millisecond timestamp: the bias covers about 35,000
/// years either side of 1970; times beyond are clamped (they tie, and the
/// tie-break decides).
const TIME_BITS: u32 = 51;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
const TIME_BIAS: i64 = 1 << 50;
/// Shift of the priority (calls) or primary key (agents).
const PRIMARY_SHIFT: u32 = TIME_BITS + TIE_BITS;
/// The head band: above every priority.
const HEAD_BIT: u128 = 1 << 127;

fn biased(t_ms: i64) -> u64 {
    (t_ms.saturating_add(TIME_BIAS)).clamp(0, TIME_MASK as i64) as u64
}

/// Time and tie-break part of a score: earlier `t_ms` first, then lower
/// `tie`.
fn time_tie(t_ms: i64, tie: u64) -> u128 {
    let t = (TIME_MASK - biased(t_ms)) as u128;
    let s = (TIE_MASK - (tie & TIE_MASK)) as u128;
    (t << TIE_BITS) | s
}

/// Score of a waiting call: higher priority first, then earlier join, then
/// earlier arrival sequence.
pub(crate) fn call_score(priority: i32, joined_ms: i64, seq: u64) -> u128 {
    let p = (i64::from(priority) + (1i64 << 31)) as u128;
    (p << PRIMARY_SHIFT) | time_tie(joined_ms, seq)
}

/// Score of a call placed at the head of its queue
/// (`CallArrival::head`): above every [`call_score`], whatever its
/// priority and join time; among head calls, first come first served
/// (earlier arrival, then earlier arrival sequence).
pub(crate) fn head_call_score(arrived_ms: i64, seq: u64) -> u128 {
    HEAD_BIT | time_tie(arrived_ms, seq)
}

/// Score of an available agent: `primary` first (higher better), then the
/// earliest `time_ms`, then the lowest `tie`.
pub(crate) fn agent_score(primary: u32, time_ms: i64, tie: u64) -> u128 {
    ((primary as u128) << PRIMARY_SHIFT) | time_tie(time_ms, tie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_scores_order_by_priority_then_age() {
        assert!(call_score(1, 10_000, 5) > call_score(0, 0, 0));
        assert!(call_score(0, 1_000, 9) > call_score(0, 2_000, 1));
        assert!(call_score(0, 1_000, 1) > call_score(0, 1_000, 2));
        assert!(call_score(-5, 0, 0) < call_score(0, 1_000_000, 0));
        let now = 1_780_000_000_000;
        assert!(call_score(0, now, 3) > call_score(0, now + 1, 3));
        assert!(call_score(i32::MIN, 0, 0) < call_score(i32::MAX, 0, 0));
        assert!(call_score(i32::MAX, i64::MIN, 0) > call_score(i32::MAX, 0, 0));
    }

    #[test]
    fn head_scores_beat_every_priority_and_are_fifo() {
        let now = 1_780_000_000_000;
        let head = head_call_score(now, 9);
        assert!(head > call_score(i32::MAX, i64::MIN, 0));
        assert!(head > call_score(i32::MAX, now - 3_600_000, 1));
        assert!(head_call_score(now, 9) > head_call_score(now, 10));
        assert!(head_call_score(now, 11) > head_call_score(now + 1, 10));
    }

    #[test]
    fn agent_scores_order() {
        assert!(agent_score(0, 100, 3) > agent_score(0, 200, 1));
        assert!(agent_score(5, 900, 3) > agent_score(4, 100, 1));
        assert!(agent_score(0, 100, 1) > agent_score(0, 100, 2));
    }

    #[test]
    fn lazy_heap_skips_stale() {
        let mut h = LazyHeap::<u32>::default();
        for i in 0..10u32 {
            h.push(Entry {
                score: u128::from(i),
                idx: i,
                gen: 0,
            });
        }
        let top = h.peek_live(|e| e.idx % 4 == 1);
        assert_eq!(top.map(|e| e.idx), Some(9));
        let top = h.peek_live(|e| e.idx % 4 == 1 && e.idx < 9);
        assert_eq!(top.map(|e| e.idx), Some(5));
        h.compact(|e| e.idx == 1);
        assert_eq!(h.len(), 1);
    }
}
