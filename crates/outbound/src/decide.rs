//! Whether an agent's outbound call may go out, and as which practice.
//!
//! The driver looks up what it knows (the practice named by the `*8` code
//! or the agent's recent one, whether the agent serves it, the allow-lists,
//! the calls the agent has in progress) and [`decide`] gives the verdict:
//! a [`Placement`] to dial, or a [`Refusal`] with its spoken reason and
//! final status. The checks run in a fixed order so the agent hears the
//! most useful reason first.

use crate::allow::AllowList;
use crate::destination::{classify, Destination, DestinationClass};

/// Why an outbound call is refused before anything leaves the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The dialled string is not a number we can place.
    InvalidNumber,
    /// No practice to present: no (known) `*8` code and no recent call.
    NoPractice,
    /// The agent does not serve the practice named.
    NotServed,
    /// The destination is not in the practice's or the agent's allow-list
    /// (premium rate, international, short code...): the toll-fraud guard.
    Destination(DestinationClass),
    /// The agent already has the maximum of outbound calls in progress.
    TooManyCalls,
}

impl Refusal {
    /// Short name for logs, metrics and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::InvalidNumber => "invalid_number",
            Refusal::NoPractice => "no_practice",
            Refusal::NotServed => "not_served",
            Refusal::Destination(_) => "destination",
            Refusal::TooManyCalls => "too_many_calls",
        }
    }

    /// The final status of the agent's INVITE: 484 for a number that is
    /// not one, 403 for everything the switch refuses to do.
    pub fn status(self) -> u16 {
        match self {
            Refusal::InvalidNumber => 484,
            _ => 403,
        }
    }
}

/// What the driver knows about the practice the call would be made for.
#[derive(Debug, Clone, Copy)]
pub struct PracticeView<'a> {
    /// Practice id.
    pub id: &'a str,
    /// The number shown to the called party (`None`: the practice has
    /// none, so it cannot call out).
    pub caller_id: Option<&'a str>,
    /// What its calls may reach.
    pub allow: &'a AllowList,
    /// Whether the agent serves this practice.
    pub agent_serves: bool,
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct DialFacts<'a> {
    /// The number as dialled (after the `*8<code>*` prefix).
    pub number: &'a str,
    /// The practice chosen (by code, else the agent's recent one); `None`
    /// when neither gives one.
    pub practice: Option<PracticeView<'a>>,
    /// The agent's own allow-list, if restricted.
    pub agent_allow: Option<&'a AllowList>,
    /// Outbound calls the agent has in progress (this one excluded).
    pub in_progress: u32,
    /// The most an agent may have.
    pub max_per_agent: u32,
}

/// An outbound call cleared to go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The practice it is made for.
    pub practice: String,
    /// The number shown (From and P-Asserted-Identity).
    pub caller_id: String,
    /// Where it goes.
    pub destination: Destination,
}

/// The verdict on an outbound call. Checks, in order: the number, the
/// practice, the agent serving it, the allow-lists (practice, then agent),
/// the agent's calls in progress.
pub fn decide(f: &DialFacts<'_>) -> Result<Placement, Refusal> {
    let destination = classify(f.number).map_err(|_| Refusal::InvalidNumber)?;
    let practice = f.practice.ok_or(Refusal::NoPractice)?;
    if !practice.agent_serves {
        return Err(Refusal::NotServed);
    }
    let caller_id = practice.caller_id.ok_or(Refusal::NoPractice)?;
    let allowed =
        practice.allow.allows(&destination) && f.agent_allow.is_none_or(|a| a.allows(&destination));
    if !allowed {
        return Err(Refusal::Destination(destination.class));
    }
    if f.in_progress >= f.max_per_agent {
        return Err(Refusal::TooManyCalls);
    }
    Ok(Placement {
        practice: practice.id.to_string(),
        caller_id: caller_id.to_string(),
        destination,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(number: &'a str, practice: Option<PracticeView<'a>>) -> DialFacts<'a> {
        DialFacts {
            number,
            practice,
            agent_allow: None,
            in_progress: 0,
            max_per_agent: 2,
        }
    }

    fn martin(allow: &AllowList) -> PracticeView<'_> {
        PracticeView {
            id: "martin",
            caller_id: Some("+33450000001"),
            allow,
            agent_serves: true,
        }
    }

    #[test]
    fn a_mobile_goes_out_as_the_practice() {
        let allow = AllowList::french_default();
        let p = decide(&facts("06 12 34 56 78", Some(martin(&allow)))).unwrap();
        assert_eq!(p.practice, "martin");
        assert_eq!(p.caller_id, "+33450000001");
        assert_eq!(p.destination.dial, "+33612345678");
        assert_eq!(p.destination.class, DestinationClass::Mobile);
    }

    #[test]
    fn refusals_in_order() {
        let allow = AllowList::french_default();
        assert_eq!(
            decide(&facts("06-12-ab", Some(martin(&allow)))),
            Err(Refusal::InvalidNumber)
        );
        assert_eq!(decide(&facts("0612345678", None)), Err(Refusal::NoPractice));
        let mut other = martin(&allow);
        other.agent_serves = false;
        assert_eq!(
            decide(&facts("0899123456", Some(other))),
            Err(Refusal::NotServed)
        );
        let mut mute = martin(&allow);
        mute.caller_id = None;
        assert_eq!(
            decide(&facts("0612345678", Some(mute))),
            Err(Refusal::NoPractice)
        );
        assert_eq!(
            decide(&facts("0899123456", Some(martin(&allow)))),
            Err(Refusal::Destination(DestinationClass::Premium))
        );
        assert_eq!(
            decide(&facts("+41 22 123 45 67", Some(martin(&allow)))),
            Err(Refusal::Destination(DestinationClass::International))
        );
        let mut busy = facts("0612345678", Some(martin(&allow)));
        busy.in_progress = 2;
        assert_eq!(decide(&busy), Err(Refusal::TooManyCalls));
    }

    #[test]
    fn the_agent_list_restricts_the_practice_list() {
        let practice = AllowList::french_default();
        let agent = AllowList {
            classes: [DestinationClass::Emergency].into_iter().collect(),
            numbers: vec![],
        };
        let mut f = facts("0612345678", Some(martin(&practice)));
        f.agent_allow = Some(&agent);
        assert_eq!(
            decide(&f),
            Err(Refusal::Destination(DestinationClass::Mobile))
        );
        f.number = "15";
        assert_eq!(decide(&f).unwrap().destination.dial, "15");
    }

    #[test]
    fn statuses() {
        assert_eq!(Refusal::InvalidNumber.status(), 484);
        assert_eq!(
            Refusal::Destination(DestinationClass::Premium).status(),
            403
        );
        assert_eq!(Refusal::TooManyCalls.as_str(), "too_many_calls");
    }
}
