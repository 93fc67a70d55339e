//! Typed indices into the dispatcher's tables.
//!
//! Each table (agents, call slots, practices, pools, groups, routes,
//! requirement keys, interned skills and languages) is an [`IdxVec`] indexed
//! by its own newtype, so that using an agent index where a slot index is
//! expected does not compile. "No such entity" is `Option<...Idx>`, never a
//! sentinel value. An index is a `u32` inside: copies, comparisons and heap
//! entries cost what a raw `u32` costs.
//!
//! An index is made by [`IdxVec::push`], by iterating its table, or (in
//! `build.rs`) from the configuration position the table is filled from.
//! Tables never shrink (call slots are reused, not removed), so indexing
//! with `[]` is in bounds. A reused slot may hold another call than the one
//! an old index meant: slot indices kept across inputs (timers, heap
//! entries) are checked against the slot generation or the call sequence
//! before use. Indices never cross dispatchers: `reconfigure` translates
//! everything through ids.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

/// A table index.
pub(super) trait Idx: Copy + Eq + Ord + Hash + fmt::Debug {
    /// The index of position `i` (tables never reach `u32::MAX` entries).
    fn from_usize(i: usize) -> Self;
    /// The position in the table.
    fn index(self) -> usize;
}

macro_rules! idx_type {
    ($(#[$doc:meta])* $name:ident, $tag:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(super) struct $name(u32);

        impl $name {
            /// The raw number (for tie-breaking scores).
            #[allow(dead_code)]
            #[inline]
            pub(super) fn raw(self) -> u32 {
                self.0
            }
        }

        impl Idx for $name {
            #[inline]
            fn from_usize(i: usize) -> Self {
                debug_assert!(i < u32::MAX as usize);
                Self(i as u32)
            }

            #[inline]
            fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($tag, "#{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

idx_type!(
    /// An agent, in `Dispatcher::agents` (configuration order, then agents
    /// retired by a reconfiguration while on a call).
    AgentIdx,
    "agent"
);
idx_type!(
    /// A call slot, in `Dispatcher::slots` (reused after the call leaves).
    SlotIdx,
    "slot"
);
idx_type!(
    /// A practice, in `Dispatcher::practices` (configuration order).
    PracticeIdx,
    "practice"
);
idx_type!(
    /// A pool, in `Dispatcher::pools` (configuration order).
    PoolIdx,
    "pool"
);
idx_type!(
    /// An indexing group, in `Dispatcher::groups`.
    GroupIdx,
    "group"
);
idx_type!(
    /// A route, in `Dispatcher::routes`.
    RouteIdx,
    "route"
);
idx_type!(
    /// A call requirement key, in `Dispatcher::reqs` (0: no requirement).
    ReqIdx,
    "req"
);
idx_type!(
    /// An interned skill name.
    SkillIdx,
    "skill"
);
idx_type!(
    /// An interned language name.
    LangIdx,
    "lang"
);

impl ReqIdx {
    /// The empty requirement (no language, no skill): most calls.
    pub(super) const EMPTY: ReqIdx = ReqIdx(0);
}

/// A `Vec` indexed by one index type only.
pub(super) struct IdxVec<I, T> {
    raw: Vec<T>,
    _idx: PhantomData<fn(I) -> I>,
}

impl<I: Idx, T> IdxVec<I, T> {
    pub(super) fn new() -> Self {
        Self::from_vec(Vec::new())
    }

    pub(super) fn with_capacity(n: usize) -> Self {
        Self::from_vec(Vec::with_capacity(n))
    }

    pub(super) fn from_vec(raw: Vec<T>) -> Self {
        Self {
            raw,
            _idx: PhantomData,
        }
    }

    /// `n` copies of `v` (per-entity scratch tables).
    pub(super) fn filled(v: T, n: usize) -> Self
    where
        T: Clone,
    {
        Self::from_vec(vec![v; n])
    }

    /// Appends `v`, returning its index.
    pub(super) fn push(&mut self, v: T) -> I {
        let i = I::from_usize(self.raw.len());
        self.raw.push(v);
        i
    }

    #[inline]
    pub(super) fn get(&self, i: I) -> Option<&T> {
        self.raw.get(i.index())
    }

    /// The entry of an optional index.
    #[inline]
    pub(super) fn get_opt(&self, i: Option<I>) -> Option<&T> {
        i.and_then(|i| self.get(i))
    }

    #[inline]
    pub(super) fn get_mut(&mut self, i: I) -> Option<&mut T> {
        self.raw.get_mut(i.index())
    }

    pub(super) fn len(&self) -> usize {
        self.raw.len()
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.raw.iter()
    }

    pub(super) fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.raw.iter_mut()
    }

    /// Entries with their indices.
    pub(super) fn iter_enumerated(&self) -> impl Iterator<Item = (I, &T)> {
        self.raw
            .iter()
            .enumerate()
            .map(|(i, v)| (I::from_usize(i), v))
    }

    /// Every index, in order (does not borrow the table).
    pub(super) fn indices(&self) -> impl Iterator<Item = I> {
        (0..self.raw.len()).map(I::from_usize)
    }
}

impl<I, T: Clone> Clone for IdxVec<I, T> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            _idx: PhantomData,
        }
    }
}

impl<I, T: fmt::Debug> fmt::Debug for IdxVec<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

impl<I: Idx, T> Default for IdxVec<I, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Idx, T> Index<I> for IdxVec<I, T> {
    type Output = T;

    #[inline]
    fn index(&self, i: I) -> &T {
        &self.raw[i.index()]
    }
}

impl<I: Idx, T> IndexMut<I> for IdxVec<I, T> {
    #[inline]
    fn index_mut(&mut self, i: I) -> &mut T {
        &mut self.raw[i.index()]
    }
}
