//! Allow-lists of destinations (toll-fraud guard).
//! (Being written: see the brief.)

use crate::destination::{Destination, DestinationClass};
use std::collections::BTreeSet;

/// Which destinations may be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    /// Classes allowed.
    pub classes: BTreeSet<DestinationClass>,
    /// Numbers allowed whatever their class: E.164 prefixes (`+41`,
    /// `+3289`) or exact short codes (`3624`).
    pub numbers: Vec<String>,
}

impl Default for AllowList {
    /// [`AllowList::french_default`].
    fn default() -> Self {
        Self::french_default()
    }
}

impl AllowList {
    /// What a practice or agent may call unless configured otherwise:
    /// French fixed and mobile numbers and the emergency numbers.
    pub fn french_default() -> Self {
        Self {
            classes: [
                DestinationClass::Emergency,
                DestinationClass::Fixed,
                DestinationClass::Mobile,
            ]
            .into_iter()
            .collect(),
            numbers: Vec::new(),
        }
    }

    /// Whether `d` may be called.
    pub fn allows(&self, _d: &Destination) -> bool {
        false
    }
}
