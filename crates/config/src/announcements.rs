//! `[[announcements]]` of a dialplan: messages a practice schedules for a
//! date range (holidays, an epidemic notice), checked like the rest:
//! dates (inclusive, in the practice's time zone; `to` not before `from`,
//! ranges never overlapping, so that one day has at most one), the
//! recording (an 8 kHz mono 16-bit PCM WAV), the mode.

use std::path::Path;

use chrono::NaiveDate;
use toml::de::DeValue;
use toml::Spanned;

use crate::check::Ctx;
use crate::main_file::elements;
use crate::model::DatedAnnouncement;
use crate::practice::{date, prompt_file};
use crate::raw;
use crate::source::join;

/// `[[announcements]]` (empty when absent), files resolved against `dir`.
/// Each entry is deserialized on its own, so that a broken entry does not
/// hide the problems of the next.
pub(crate) fn announcements(
    ctx: &mut Ctx<'_>,
    root: &Spanned<DeValue<'_>>,
    dir: &Path,
) -> Option<Vec<DatedAnnouncement>> {
    let m = ctx.mark();
    let list = elements(ctx, root, "announcements");
    if let Some((p, _)) = list.get(DatedAnnouncement::MAX) {
        ctx.err(
            p,
            format!(
                "too many announcements: at most {}, got {}",
                DatedAnnouncement::MAX,
                list.len()
            ),
        );
    }
    let mut out: Vec<DatedAnnouncement> = Vec::new();
    let mut spans: Vec<(NaiveDate, NaiveDate, String)> = Vec::new();
    for (p, v) in &list {
        let src = ctx.src;
        let Some(r) = src.de_unit::<raw::Announcement>(v, p, ctx.errors) else {
            continue;
        };
        if let Some(a) = announcement(ctx, p, r, dir, &mut spans) {
            out.push(a);
        }
    }
    ctx.clean_since(m).then_some(out)
}

/// One entry at `p`; its dates are added to `spans` (the ranges seen so
/// far, for the overlap check) when they are valid.
fn announcement(
    ctx: &mut Ctx<'_>,
    p: &str,
    r: raw::Announcement,
    dir: &Path,
    spans: &mut Vec<(NaiveDate, NaiveDate, String)>,
) -> Option<DatedAnnouncement> {
    let from = date(ctx, &join(p, "from"), &r.from);
    let to = match &r.to {
        Some(t) => date(ctx, &join(p, "to"), t),
        None => from,
    };
    if !r.label.is_empty() {
        ctx.text(&join(p, "label"), &r.label);
    }
    let prompt = prompt_file(ctx, &join(p, "file"), &r.file, dir);
    let (from, to) = (from?, to?);
    if to < from {
        ctx.err(
            &join(p, "to"),
            format!("{to} is before from ({from}): the range is inclusive, to is its last day"),
        );
        return None;
    }
    if let Some((a, b, other)) = spans.iter().find(|(a, b, _)| *a <= to && from <= *b) {
        ctx.err(
            &join(p, "from"),
            format!("dates overlap {other} ({a} to {b}): at most one announcement plays on a day"),
        );
    }
    spans.push((from, to, p.to_string()));
    Some(DatedAnnouncement {
        from,
        to,
        prompt: prompt?,
        mode: r.mode.unwrap_or_default(),
        label: r.label,
    })
}
