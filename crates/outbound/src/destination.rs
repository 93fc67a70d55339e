//! Destination classes of the French numbering plan (ARCEP).
//! (Being written: see the brief.)

/// What kind of number a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestinationClass {
    /// 15, 17, 18, 112, 114.
    Emergency,
    /// Geographic and non-geographic fixed numbers: 01-05, 09.
    Fixed,
    /// Mobile numbers: 06, 07.
    Mobile,
    /// Freephone: 0800-0805.
    Freephone,
    /// Special-rate services other than premium: 0806-0809, 081x, 082x,
    /// 084x-088x.
    SharedCost,
    /// Premium rate: 089x.
    Premium,
    /// Other short codes (3xxx, 118xxx, 10xx, 116xxx...).
    Short,
    /// Outside the French plan (a country code other than 33).
    International,
}

impl DestinationClass {
    /// Every class, in order.
    pub const ALL: [DestinationClass; 8] = [
        DestinationClass::Emergency,
        DestinationClass::Fixed,
        DestinationClass::Mobile,
        DestinationClass::Freephone,
        DestinationClass::SharedCost,
        DestinationClass::Premium,
        DestinationClass::Short,
        DestinationClass::International,
    ];

    /// Its name in configuration files, metrics and records.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationClass::Emergency => "emergency",
            DestinationClass::Fixed => "fixed",
            DestinationClass::Mobile => "mobile",
            DestinationClass::Freephone => "freephone",
            DestinationClass::SharedCost => "shared-cost",
            DestinationClass::Premium => "premium",
            DestinationClass::Short => "short",
            DestinationClass::International => "international",
        }
    }

    /// The class named `s` (see [`DestinationClass::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A number that can be dialled, with its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The user part of the Request-URI sent to the gateway: E.164
    /// (`+33612345678`) for full numbers, the digits for short codes (`15`).
    pub dial: String,
    /// Its class.
    pub class: DestinationClass,
}

/// The dialled string is not a number we can place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a dialable number")]
pub struct InvalidNumber;

/// Classifies a dialled number.
pub fn classify(_dialled: &str) -> Result<Destination, InvalidNumber> {
    Err(InvalidNumber)
}
