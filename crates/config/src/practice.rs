//! Validation of one practice dialplan file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::NaiveDate;
use permanence_calendar::{
    parse_date, parse_time_range, DateException, DayHours, HolidayRule, MinuteRange, Schedule, Tz,
    WeeklyHours,
};
use permanence_numbers::{normalize, Country, E164};
use permanence_outbound::{classify, AllowList, DestinationClass};
use toml::de::DeValue;
use toml::Spanned;

use crate::announcements::announcements;
use crate::check::{is_email, is_id, Ctx, ID_RULE};
use crate::error::{ConfigError, Origin};
use crate::main_file::{elements, timezone, weekly};
use crate::model::{
    CallbackOffer, CallbackPolicy, CardEntry, ConfiguredStep, DispatcherConfig, OutboundSettings,
    OverflowTarget, Practice, PracticeCard, PracticeOutbound, Prompt, PromptKind, Prompts,
    QueueSettings, Routing, RoutingStep, Selector, TransferTarget, TransferTo, Triage,
    TriageOption, WhenClosed,
};
use crate::raw::{self, OverflowAction};
use crate::source::{self, get, get_str, index, join, Source};
use crate::wav::{inspect_wav, WavError};
use permanence_types::{AgentId, PoolId};

/// What the main file provides to dialplan validation.
pub(crate) struct Shared<'a> {
    /// User names of every `[[agents]]` entry (valid or not).
    pub known_agents: &'a HashSet<String>,
    /// Ids of every `[[pools]]` entry (valid or not).
    pub known_pools: &'a HashSet<String>,
    /// Defaults for ring timeout and wrap-up.
    pub dispatcher: &'a DispatcherConfig,
    /// The default allow-list of `[outbound]`.
    pub outbound: &'a OutboundSettings,
}

/// What was read from one dialplan file.
pub(crate) struct PracticeParts {
    pub src: Source,
    /// The `id` as written, if it is a string, for duplicate detection even
    /// when the rest of the file is broken.
    pub id: Option<String>,
    /// Valid numbers (forwarded-from and DIDs) with their field paths.
    pub numbers: Vec<(E164, String)>,
    /// Valid numbers the engine dials for the practice's callers (triage
    /// `route_to`, transfer `number`), with their field paths, for the
    /// loop check across practices.
    pub dialled: Vec<(E164, String)>,
    /// `outbound.code` when it is valid, for duplicate detection even when
    /// the rest of the file is broken.
    pub code: Option<String>,
    /// The practice, when the whole file is valid.
    pub practice: Option<Practice>,
    /// Non-fatal findings.
    pub warnings: Vec<ConfigError>,
}

/// Loads and validates one dialplan file. `None` when it cannot be read or
/// parsed at all.
pub(crate) fn load_practice(
    path: &Path,
    shared: &Shared<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<PracticeParts> {
    let text = match source::read_text(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let mut src = Source::new(path, &text);
    let root = source::parse(&mut src, &text, errors)?;
    let id = get_str(&root, "id");
    let top: Option<raw::PracticeTop> = src.de_unit(&root, "", errors);
    let hours_raw: Option<raw::Hours> = unit(&src, &root, "hours", errors);
    let prompts_raw: Option<raw::Prompts> = unit(&src, &root, "prompts", errors);
    let queue_raw: Option<raw::Queue> = unit(&src, &root, "queue", errors);
    let triage_raw: Option<raw::Triage> = unit(&src, &root, "triage", errors);
    let routing_raw: Option<raw::Routing> = unit(&src, &root, "routing", errors);
    let outbound_raw: Option<raw::PracticeOutbound> = unit(&src, &root, "outbound", errors);
    let callback_raw: Option<raw::Callback> = unit(&src, &root, "callback", errors);
    let voicemail_raw: Option<raw::Voicemail> = unit(&src, &root, "voicemail", errors);
    let has_voicemail = get(&root, "voicemail").is_some();
    let has = |k: &str| get(&root, k).is_some();
    let (has_prompts, has_queue, has_triage) = (has("prompts"), has("queue"), has("triage"));
    let (has_outbound, has_callback) = (has("outbound"), has("callback"));

    let mut warnings = Vec::new();
    let mut ctx = Ctx { src: &src, errors };
    let start = ctx.mark();
    let top = top.map(|t| top_level(&mut ctx, t));
    let tz = top
        .as_ref()
        .map_or(chrono_tz::Europe::Paris, |t| t.timezone);
    let country = top.as_ref().map_or(Country::Fr, |t| t.country);
    let languages = top.as_ref().map(|t| t.languages.clone());

    let when_closed = when_closed(&mut ctx, hours_raw.as_ref());
    let hours = hours_raw.and_then(|h| hours(&mut ctx, h, tz, &mut warnings));
    let dir = path.parent().unwrap_or(Path::new(""));
    let announcements = announcements(&mut ctx, &root, dir);
    let prompts = if has_prompts {
        prompts_raw.and_then(|p| prompts(&mut ctx, p, dir, languages.as_deref()))
    } else {
        Some(Prompts::default())
    };
    let queue = if has_queue {
        queue_raw.map(|q| queue(&mut ctx, q))
    } else {
        Some(QueueSettings::default())
    };
    let mut dialled = Vec::new();
    let triage = if has_triage {
        triage_raw
            .and_then(|t| triage(&mut ctx, t, country, languages.as_deref(), &mut dialled))
            .map(Some)
    } else {
        Some(None)
    };
    let routing = routing_raw.and_then(|r| routing(&mut ctx, r, shared));
    let outbound_raw = if has_outbound {
        outbound_raw
    } else {
        Some(raw::PracticeOutbound::default())
    };
    let (outbound, code) = match outbound_raw {
        Some(o) => outbound(&mut ctx, o, country, top.as_ref(), shared.outbound),
        None => (None, None),
    };
    let callback = if has_callback {
        callback_raw.and_then(|c| callback(&mut ctx, c))
    } else {
        Some(CallbackPolicy::default())
    };
    let place = Place {
        country,
        allow: outbound.as_ref().map(|o| &o.allow),
        shared,
    };
    let transfers = transfers(&mut ctx, &root, &place, &mut dialled);
    let card = match get(&root, "card") {
        Some(v) => card(&mut ctx, v).map(Some),
        None => Some(None),
    };
    let voicemail_raw = if has_voicemail {
        voicemail_raw
    } else {
        Some(raw::Voicemail::default())
    };
    let voicemail_email = voicemail_raw.and_then(|v| {
        let needs = VoicemailUse {
            overflow: routing
                .as_ref()
                .is_some_and(|r| r.overflow == OverflowTarget::Voicemail),
            closed: when_closed == WhenClosed::Voicemail,
        };
        voicemail(&mut ctx, v, needs, has_voicemail)
    });

    let numbers = top.as_ref().map(|t| t.numbers.clone()).unwrap_or_default();
    let clean = ctx.clean_since(start);
    let practice = match (
        (top, hours, prompts, queue, triage),
        (
            routing,
            outbound,
            callback,
            transfers,
            card,
            voicemail_email,
            announcements,
        ),
    ) {
        (
            (Some(t), Some(hours), Some(prompts), Some(queue), Some(triage)),
            (
                Some(routing),
                Some(outbound),
                Some(callback),
                Some(transfers),
                Some(card),
                Some(voicemail_email),
                Some(announcements),
            ),
        ) if clean => Some(Practice {
            id: t.id,
            name: t.name,
            specialty: t.specialty,
            language: t.language,
            languages: t.languages,
            timezone: t.timezone,
            country: t.country,
            forwarded_from: t.forwarded_from,
            dids: t.dids,
            info_url: t.info_url,
            hours,
            prompts,
            queue,
            triage,
            routing,
            outbound,
            callback,
            transfers,
            card,
            voicemail_email,
            when_closed,
            announcements,
            source: path.to_path_buf(),
        }),
        _ => None,
    };
    Some(PracticeParts {
        id,
        numbers,
        dialled,
        code,
        practice,
        warnings,
        src,
    })
}

fn unit<T: serde::de::DeserializeOwned>(
    src: &Source,
    root: &Spanned<DeValue<'_>>,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    get(root, key).and_then(|v| src.de_unit(v, key, errors))
}

fn origin(src: &Source, path: &str) -> Origin {
    Origin {
        file: src.path.clone(),
        line: src.line_of(path),
        field: path.to_string(),
    }
}

/// The validated top-level keys.
struct Top {
    id: String,
    name: String,
    specialty: String,
    language: String,
    languages: Vec<String>,
    timezone: Tz,
    country: Country,
    forwarded_from: Vec<E164>,
    dids: Vec<E164>,
    info_url: Option<String>,
    numbers: Vec<(E164, String)>,
}

fn top_level(ctx: &mut Ctx<'_>, r: raw::PracticeTop) -> Top {
    if !is_id(&r.id) {
        ctx.err("id", format!("invalid practice id {:?}: {ID_RULE}", r.id));
    }
    ctx.text("name", &r.name);
    ctx.skill("specialty", &r.specialty);
    ctx.language("language", &r.language);
    let languages = match r.languages {
        None => vec![r.language.clone()],
        Some(list) => {
            ctx.languages("languages", &list);
            if !list.is_empty() && !list.contains(&r.language) {
                ctx.err(
                    "languages",
                    format!("must contain the practice language {:?}", r.language),
                );
            }
            // The default language first, then the others in file order.
            let mut v = vec![r.language.clone()];
            v.extend(list.into_iter().filter(|l| *l != r.language));
            v
        }
    };
    let timezone = timezone(ctx, "timezone", Some(&r.timezone));
    let country = r.country.unwrap_or_default();
    let mut numbers: Vec<(E164, String)> = Vec::new();
    let mut first_at: HashMap<E164, String> = HashMap::new();
    let mut lists = (Vec::new(), Vec::new());
    for (key, list) in [("forwarded_from", &r.forwarded_from), ("dids", &r.dids)] {
        for (i, raw) in list.iter().enumerate() {
            let p = index(key, i);
            let Some(n) = normalize(raw, country) else {
                ctx.err(
                    &p,
                    format!("not a telephone number: {raw:?} (expected E.164 such as +33450000001, or a national number)"),
                );
                continue;
            };
            if let Some(first) = first_at.get(&n) {
                ctx.err(&p, format!("number {n} is listed twice (also {first})"));
                continue;
            }
            first_at.insert(n.clone(), p.clone());
            numbers.push((n.clone(), p));
            if key == "dids" {
                lists.1.push(n);
            } else {
                lists.0.push(n);
            }
        }
    }
    if r.forwarded_from.is_empty() && r.dids.is_empty() {
        ctx.err(
            "forwarded_from",
            "a practice needs at least one number in forwarded_from or dids",
        );
    }
    if let Some(url) = &r.info_url {
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() > "https://".len()
            && !url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'));
        if !ok {
            ctx.err(
                "info_url",
                "must be an http:// or https:// URL without spaces, quotes or angle brackets",
            );
        }
    }
    Top {
        id: r.id,
        name: r.name,
        specialty: r.specialty,
        language: r.language,
        languages,
        timezone,
        country,
        forwarded_from: lists.0,
        dids: lists.1,
        info_url: r.info_url,
        numbers,
    }
}

/// A date at `path`: a TOML local date (`2026-08-03`) or a string.
pub(crate) fn date(ctx: &mut Ctx<'_>, path: &str, v: &toml::Value) -> Option<NaiveDate> {
    match v {
        toml::Value::String(s) => match parse_date(s) {
            Ok(d) => Some(d),
            Err(e) => {
                ctx.err(path, e.to_string());
                None
            }
        },
        toml::Value::Datetime(dt) => match (dt.date, dt.time, dt.offset) {
            (Some(d), None, None) => {
                NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                    .or_else(|| {
                        ctx.err(path, format!("invalid date {dt}"));
                        None
                    })
            }
            _ => {
                ctx.err(path, format!("expected a date without time, got {dt}"));
                None
            }
        },
        other => {
            ctx.err(
                path,
                format!(
                    "expected a date such as 2026-08-03, got a {}",
                    other.type_str()
                ),
            );
            None
        }
    }
}

fn hours(
    ctx: &mut Ctx<'_>,
    r: raw::Hours,
    tz: Tz,
    warnings: &mut Vec<ConfigError>,
) -> Option<Schedule> {
    let m = ctx.mark();
    let always_open = r.always_open.unwrap_or(false);
    let holidays = r.holidays.unwrap_or_default();
    let days = [
        ("mon", &r.mon),
        ("tue", &r.tue),
        ("wed", &r.wed),
        ("thu", &r.thu),
        ("fri", &r.fri),
        ("sat", &r.sat),
        ("sun", &r.sun),
    ];
    let week = weekly(ctx, "hours", days);
    if always_open {
        if let Some((name, _)) = days.iter().find(|(_, v)| v.is_some()) {
            ctx.err(
                &join("hours", name),
                "weekday hours cannot be combined with always_open = true",
            );
        }
        if holidays != HolidayRule::None {
            ctx.err(
                "hours.holidays",
                "cannot be combined with always_open = true (a 24/7 practice is open on holidays)",
            );
        }
        if !r.exceptions.is_empty() {
            ctx.err(
                "hours.exceptions[0]",
                "exceptions cannot be combined with always_open = true",
            );
        }
    }
    let mut exceptions: Vec<DateException> = Vec::new();
    let mut spans: Vec<(NaiveDate, NaiveDate, String)> = Vec::new();
    for (i, e) in r.exceptions.iter().enumerate() {
        let p = index("hours.exceptions", i);
        let from = date(ctx, &join(&p, "from"), &e.from);
        let to = match &e.to {
            Some(t) => date(ctx, &join(&p, "to"), t),
            None => from,
        };
        let mut day = DayHours::closed();
        for (j, text) in e.hours.iter().enumerate() {
            let hp = index(&join(&p, "hours"), j);
            match parse_time_range(text) {
                Err(err) => ctx.err(&hp, err.to_string()),
                Ok((s, end)) => match MinuteRange::new(s, end) {
                    None => ctx.err(
                        &hp,
                        format!("{text:?} crosses midnight: an exception's hours must end on the same day"),
                    ),
                    Some(range) => {
                        if let Err(err) = day.insert(&p, range) {
                            ctx.err(&hp, err.to_string());
                        }
                    }
                },
            }
        }
        if !e.label.is_empty() {
            ctx.text(&join(&p, "label"), &e.label);
        }
        let (Some(from), Some(to)) = (from, to) else {
            continue;
        };
        match DateException::new(from, to, day, e.label.clone()) {
            Err(err) => ctx.err(&join(&p, "to"), err.to_string()),
            Ok(x) => {
                if let Some((a, b, other)) = spans.iter().find(|(a, b, _)| *a <= to && from <= *b) {
                    ctx.err(
                        &join(&p, "from"),
                        format!("dates overlap {other} ({a} to {b})"),
                    );
                }
                spans.push((from, to, p.clone()));
                exceptions.push(x);
            }
        }
    }
    if !ctx.clean_since(m) {
        return None;
    }
    if !always_open && week.is_never_open() {
        if exceptions.iter().any(|e| !e.hours.is_closed()) {
            warnings.push(ctx.src.err(
                "hours",
                "no weekday hours: the practice is only open on exception dates",
            ));
        } else {
            ctx.err(
                "hours",
                "the practice is never open: give weekday hours (mon = [\"08:00-12:00\"], ...) or set always_open = true",
            );
            return None;
        }
    }
    Some(Schedule {
        tz,
        always_open,
        weekly: if always_open {
            WeeklyHours::always()
        } else {
            week
        },
        holidays,
        exceptions,
    })
}

/// `[prompts]`, with `[prompts.en]` for a practice whose `languages`
/// include `"en"` (elsewhere it is an error: nobody would hear it).
fn prompts(
    ctx: &mut Ctx<'_>,
    mut r: raw::Prompts,
    dir: &Path,
    languages: Option<&[String]>,
) -> Option<Prompts> {
    let m = ctx.mark();
    let en = r.en.take();
    let mut out = prompt_files(ctx, r, dir, "prompts");
    if let Some(mut en) = en {
        if en.en.take().is_some() {
            ctx.err("prompts.en.en", "unknown field `en`");
        }
        if languages.is_some_and(|l| !l.iter().any(|x| x == "en")) {
            ctx.err(
                "prompts.en",
                "the practice's languages do not include \"en\"",
            );
        }
        out.en = Some(Box::new(prompt_files(ctx, *en, dir, "prompts.en")));
    }
    ctx.clean_since(m).then_some(out)
}

/// The prompt files of one `[prompts]` table at `base`.
fn prompt_files(ctx: &mut Ctx<'_>, r: raw::Prompts, dir: &Path, base: &str) -> Prompts {
    let mut out = Prompts::default();
    for kind in PromptKind::ALL {
        let value = match kind {
            PromptKind::Greeting => &r.greeting,
            PromptKind::Hold => &r.hold,
            PromptKind::Closed => &r.closed,
            PromptKind::Voicemail => &r.voicemail,
            PromptKind::Callback => &r.callback,
            PromptKind::Triage => &r.triage,
        };
        let Some(rel) = value else { continue };
        let p = join(base, kind.key());
        if let Some(prompt) = prompt_file(ctx, &p, rel, dir) {
            *out.slot(kind) = Some(prompt);
        }
    }
    out
}

/// The prompt file `rel` (relative to `dir`) configured at `p`: it must
/// exist and be an 8 kHz mono 16-bit PCM WAV.
pub(crate) fn prompt_file(ctx: &mut Ctx<'_>, p: &str, rel: &str, dir: &Path) -> Option<Prompt> {
    if rel.trim().is_empty() {
        ctx.err(p, "must not be empty");
        return None;
    }
    let path = dir.join(rel);
    match inspect_wav(&path) {
        Err(WavError::Io(why)) => ctx.err(p, format!("prompt file {rel:?}: {why}")),
        Err(e) => ctx.err(p, format!("prompt file {rel:?}: {e}")),
        Ok(info) if !info.is_telephony_pcm() => ctx.err(
            p,
            format!(
                "prompt file {rel:?} must be 8000 Hz mono 16-bit PCM WAV, found {}",
                info.describe()
            ),
        ),
        Ok(info) => {
            return Some(Prompt {
                path,
                duration: info.duration(),
                origin: origin(ctx.src, p),
            })
        }
    }
    None
}

fn queue(ctx: &mut Ctx<'_>, r: raw::Queue) -> QueueSettings {
    let d = QueueSettings::default();
    QueueSettings {
        announce_position: r.announce_position.unwrap_or(d.announce_position),
        announce_wait: r.announce_wait.unwrap_or(d.announce_wait),
        announce_every: ctx.opt_secs(
            "queue.announce_every_seconds",
            r.announce_every_seconds,
            60,
            10,
            600,
        ),
    }
}

/// The key a value names: a one-character string (`"1"`, `"*"`) or an
/// integer 0 to 9. `None` for anything else.
fn key(v: &toml::Value) -> Option<char> {
    match v {
        toml::Value::String(s) => {
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            }
        }
        toml::Value::Integer(i) => u32::try_from(*i)
            .ok()
            .filter(|d| *d <= 9)
            .and_then(|d| char::from_digit(d, 10)),
        _ => None,
    }
}

/// A DTMF digit written `"1"`, `"*"`, `"#"` or `1`.
fn digit(ctx: &mut Ctx<'_>, path: &str, v: &toml::Value) -> Option<char> {
    let c = key(v).filter(|c| c.is_ascii_digit() || *c == '*' || *c == '#');
    if c.is_none() {
        ctx.err(
            path,
            format!("invalid DTMF digit {v}: expected one of 0-9, * or #"),
        );
    }
    c
}

fn skill_map(ctx: &mut Ctx<'_>, path: &str, m: &BTreeMap<String, i64>) -> BTreeMap<String, u8> {
    let mut out = BTreeMap::new();
    for (name, level) in m {
        let p = join(path, name);
        ctx.skill(&p, name);
        if let Some(l) = ctx
            .range(&p, *level, 1, 5)
            .and_then(|l| u8::try_from(l).ok())
        {
            out.insert(name.clone(), l);
        }
    }
    out
}

fn triage(
    ctx: &mut Ctx<'_>,
    r: raw::Triage,
    country: Country,
    languages: Option<&[String]>,
    dialled: &mut Vec<(E164, String)>,
) -> Option<Triage> {
    let m = ctx.mark();
    let timeout = ctx.opt_secs("triage.timeout_seconds", r.timeout_seconds, 5, 1, 30);
    if r.options.is_empty() {
        ctx.err("triage.options", "a triage menu needs at least one option");
    }
    let mut options: Vec<TriageOption> = Vec::new();
    let mut digits: Vec<(char, String)> = Vec::new();
    for (i, o) in r.options.iter().enumerate() {
        let p = index("triage.options", i);
        let d = digit(ctx, &join(&p, "digit"), &o.digit);
        if let Some(d) = d {
            if let Some((_, first)) = digits.iter().find(|(x, _)| *x == d) {
                ctx.err(
                    &join(&p, "digit"),
                    format!("digit \"{d}\" is already used by {first}"),
                );
            }
            if d == Practice::ENGLISH_DIGIT && languages.is_some_and(crate::model::offers_english) {
                ctx.err(
                    &join(&p, "digit"),
                    "digit \"9\" is « For English, press 9 » in a practice whose languages include \"en\"",
                );
            }
            digits.push((d, p.clone()));
        }
        ctx.text(&join(&p, "label"), &o.label);
        let priority = o
            .priority
            .and_then(|v| ctx.range(&join(&p, "priority"), v, -1000, 1000))
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(0);
        let skills = skill_map(ctx, &join(&p, "skills"), &o.skills);
        let route_to = o.route_to.as_ref().and_then(|raw| {
            let rp = join(&p, "route_to");
            let n = normalize(raw, country);
            match &n {
                None => ctx.err(
                    &rp,
                    format!("not a telephone number: {raw:?} (expected E.164 such as +33612345678)"),
                ),
                Some(n) => dialled.push((n.clone(), rp.clone())),
            }
            if n.is_some() && (!o.skills.is_empty() || o.language.is_some() || o.priority.is_some())
            {
                ctx.err(
                    &rp,
                    "a call sent to route_to leaves the queue: priority, skills and language would be ignored",
                );
            }
            n
        });
        if let Some(l) = &o.language {
            let lp = join(&p, "language");
            ctx.language(&lp, l);
            if let Some(langs) = languages {
                if crate::check::is_language(l) && !langs.contains(l) {
                    ctx.err(
                        &lp,
                        format!(
                            "{l:?} is not one of the practice languages ({})",
                            langs.join(", ")
                        ),
                    );
                }
            }
        }
        if let Some(d) = d {
            options.push(TriageOption {
                digit: d,
                label: o.label.clone(),
                priority,
                skills,
                route_to,
                language: o.language.clone(),
                origin: origin(ctx.src, &p),
            });
        }
    }
    let default = r.default.as_ref().and_then(|v| {
        let d = digit(ctx, "triage.default", v)?;
        if !digits.iter().any(|(x, _)| *x == d) {
            ctx.err(
                "triage.default",
                format!("\"{d}\" is not the digit of any triage option"),
            );
        }
        Some(d)
    });
    ctx.clean_since(m).then_some(Triage {
        timeout,
        default,
        options,
    })
}

/// Whether `s` is a practice code: 1 to 4 ASCII digits.
fn is_code(s: &str) -> bool {
    (1..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[outbound]` (all defaults when the section is absent), and its `code`
/// when valid, even if the rest is not (for the duplicate check across
/// practices). `top` is `None` when the top-level keys are broken: the
/// default caller ID is then unknown, and the practice is refused anyway.
fn outbound(
    ctx: &mut Ctx<'_>,
    r: raw::PracticeOutbound,
    country: Country,
    top: Option<&Top>,
    defaults: &OutboundSettings,
) -> (Option<PracticeOutbound>, Option<String>) {
    let m = ctx.mark();
    let code = match r.code {
        Some(c) if !is_code(&c) => {
            ctx.err(
                "outbound.code",
                format!("invalid practice code {c:?}: expected 1 to 4 digits (agents dial *8<code>*<number>)"),
            );
            None
        }
        c => c,
    };
    let caller_id = match &r.caller_id {
        Some(raw) => {
            let n = normalize(raw, country);
            if n.is_none() {
                ctx.err(
                    "outbound.caller_id",
                    format!("not a telephone number: {raw:?} (expected E.164 such as +33450000001, or a national number)"),
                );
            }
            n
        }
        None => top.and_then(|t| t.forwarded_from.first().or(t.dids.first()).cloned()),
    };
    let allow = ctx.allow_list_or(
        "outbound.allow",
        r.allow.as_deref(),
        "outbound.allow_numbers",
        r.allow_numbers.as_deref(),
        &defaults.allow,
    );
    let outbound = match allow {
        Some(allow) if ctx.clean_since(m) => Some(PracticeOutbound {
            code: code.clone(),
            caller_id,
            allow,
        }),
        _ => None,
    };
    (outbound, code)
}

/// `[callback]`, when the section is present.
///
/// `digit` and `offer_after_seconds` without `offer = true` are errors,
/// like other settings that would have no effect (`routing.overflow.pool`
/// without `action = "pool"`, `min_level` without `skill`): only "only
/// allowed when offer = true" is reported for them, not their value.
///
/// There is no conflict check of the digit: nothing else listens to keys
/// while a call waits in the queue (the triage menu is answered before the
/// call is queued), see [`CallbackOffer::digit`].
/// `[hours] when_closed` (hang up when absent); refused with
/// `always_open = true`, where it would have no effect.
fn when_closed(ctx: &mut Ctx<'_>, r: Option<&raw::Hours>) -> WhenClosed {
    let Some(r) = r else {
        return WhenClosed::Hangup;
    };
    if r.when_closed.is_some() && r.always_open == Some(true) {
        ctx.err(
            "hours.when_closed",
            "cannot be combined with always_open = true (the practice is never closed)",
        );
    }
    match r.when_closed {
        Some(raw::WhenClosed::Voicemail) => WhenClosed::Voicemail,
        Some(raw::WhenClosed::Hangup) | None => WhenClosed::Hangup,
    }
}

/// What records voicemail messages in a practice.
#[derive(Clone, Copy)]
struct VoicemailUse {
    /// `routing.overflow.action = "voicemail"`.
    overflow: bool,
    /// `hours.when_closed = "voicemail"`.
    closed: bool,
}

/// `[voicemail] email`: valid, distinct addresses; at least one when the
/// overflow goes to voicemail or the practice takes messages when closed
/// (the messages must reach the practice).
fn voicemail(
    ctx: &mut Ctx<'_>,
    r: raw::Voicemail,
    needs: VoicemailUse,
    present: bool,
) -> Option<Vec<String>> {
    let m = ctx.mark();
    let mut out: Vec<String> = Vec::new();
    for (i, a) in r.email.iter().enumerate() {
        let p = index("voicemail.email", i);
        let a = a.trim();
        if !is_email(a) {
            ctx.err(&p, format!("not an e-mail address: {a:?}"));
        } else if out.iter().any(|o| o.eq_ignore_ascii_case(a)) {
            ctx.err(&p, format!("{a} is listed twice"));
        } else {
            out.push(a.to_owned());
        }
    }
    if (needs.overflow || needs.closed) && r.email.is_empty() {
        let (path, what) = if present {
            ("voicemail.email", "is empty")
        } else if needs.overflow {
            ("routing.overflow.action", "is \"voicemail\"")
        } else {
            ("hours.when_closed", "is \"voicemail\"")
        };
        ctx.err(
            path,
            format!(
                "{what} but the practice has no e-mail address for its messages: \
                 add [voicemail] email = [\"secretariat@...\"]"
            ),
        );
    }
    ctx.clean_since(m).then_some(out)
}

fn callback(ctx: &mut Ctx<'_>, r: raw::Callback) -> Option<CallbackPolicy> {
    let m = ctx.mark();
    let offer = if r.offer.unwrap_or(false) {
        let digit = match &r.digit {
            None => Some(CallbackOffer::DEFAULT_DIGIT),
            Some(v) => {
                let d = key(v).filter(char::is_ascii_digit);
                if d.is_none() {
                    ctx.err(
                        "callback.digit",
                        format!("invalid callback digit {v}: expected one of 0-9"),
                    );
                }
                d
            }
        };
        let after = ctx.opt_secs(
            "callback.offer_after_seconds",
            r.offer_after_seconds,
            0,
            0,
            3600,
        );
        digit.map(|digit| CallbackOffer { digit, after })
    } else {
        if r.digit.is_some() {
            ctx.err(
                "callback.digit",
                "only allowed when offer = true (without the offer, no key is listened to in the queue)",
            );
        }
        if r.offer_after_seconds.is_some() {
            ctx.err(
                "callback.offer_after_seconds",
                "only allowed when offer = true (without the offer, nothing is played)",
            );
        }
        None
    };
    let d = CallbackPolicy::default();
    let within = ctx.opt_u32("callback.within_minutes", r.within_minutes, 60, 5, 1440);
    let max_attempts = ctx.opt_u32(
        "callback.max_attempts",
        r.max_attempts,
        d.max_attempts,
        1,
        10,
    );
    let retry = ctx.opt_u32("callback.retry_minutes", r.retry_minutes, 10, 1, 240);
    ctx.clean_since(m).then_some(CallbackPolicy {
        offer,
        within: minutes(within),
        max_attempts,
        retry_spacing: minutes(retry),
    })
}

/// What the transfer targets of a practice are checked against.
struct Place<'a> {
    /// The numbering plan of national number forms.
    country: Country,
    /// The practice's outbound allow-list; `None` when `[outbound]` is
    /// broken (its errors are reported, numbers are then only checked as
    /// numbers).
    allow: Option<&'a AllowList>,
    /// The agents and pools of the main file.
    shared: &'a Shared<'a>,
}

/// `[[transfers]]` (empty when absent). Each entry is deserialized on its
/// own, so that a broken entry does not hide the problems of the next; a
/// code is checked for duplicates even when the rest of its entry is
/// broken. Valid numbers are added to `dialled`.
fn transfers(
    ctx: &mut Ctx<'_>,
    root: &Spanned<DeValue<'_>>,
    place: &Place<'_>,
    dialled: &mut Vec<(E164, String)>,
) -> Option<Vec<TransferTarget>> {
    let m = ctx.mark();
    let mut out = Vec::new();
    let mut codes: HashMap<String, String> = HashMap::new();
    for (p, v) in elements(ctx, root, "transfers") {
        if let Some(code) = get_str(v, "code") {
            if let Some(first) = codes.get(&code) {
                ctx.err(
                    &join(&p, "code"),
                    format!("transfer code {code:?} is already used by {first}"),
                );
            } else {
                codes.insert(code, p.clone());
            }
        }
        let src = ctx.src;
        let r: Option<raw::Transfer> = src.de_unit(v, &p, ctx.errors);
        if let Some(t) = r.and_then(|r| transfer(ctx, &p, r, place, dialled)) {
            out.push(t);
        }
    }
    ctx.clean_since(m).then_some(out)
}

/// One `[[transfers]]` entry at `p`: its code, its label and its one
/// target. Every given target is checked, even when more than one is.
fn transfer(
    ctx: &mut Ctx<'_>,
    p: &str,
    r: raw::Transfer,
    place: &Place<'_>,
    dialled: &mut Vec<(E164, String)>,
) -> Option<TransferTarget> {
    let m = ctx.mark();
    if !is_code(&r.code) {
        ctx.err(
            &join(p, "code"),
            format!(
                "invalid transfer code {:?}: expected 1 to 4 digits (the agent transfers to sip:<code>@<engine>)",
                r.code
            ),
        );
    }
    ctx.text(&join(p, "label"), &r.label);
    let number = r
        .number
        .as_deref()
        .and_then(|n| transfer_number(ctx, &join(p, "number"), n, place, dialled))
        .map(TransferTo::Number);
    let agent = r.agent.as_deref().and_then(|a| {
        if place.shared.known_agents.contains(a) {
            Some(TransferTo::Agent(AgentId::from(a)))
        } else {
            ctx.err(
                &join(p, "agent"),
                format!("agent {a:?} is not defined in [[agents]]"),
            );
            None
        }
    });
    let pool = r.pool.as_deref().and_then(|id| {
        if place.shared.known_pools.contains(id) {
            Some(TransferTo::Pool(PoolId::from(id)))
        } else {
            ctx.err(
                &join(p, "pool"),
                format!("pool {id:?} is not defined in [[pools]]"),
            );
            None
        }
    });
    let given: Vec<&str> = [
        ("number", r.number.is_some()),
        ("agent", r.agent.is_some()),
        ("pool", r.pool.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    match given.as_slice() {
        [] => ctx.err(p, "a transfer needs a target: one of number, agent or pool"),
        [_] => {}
        [first, others @ ..] => {
            for key in others {
                ctx.err(
                    &join(p, key),
                    format!("a transfer has one target: {first} is already given"),
                );
            }
        }
    }
    let to = number.or(agent).or(pool)?;
    ctx.clean_since(m).then(|| TransferTarget {
        code: r.code,
        label: r.label,
        to,
        origin: origin(ctx.src, p),
    })
}

/// A transfer `number` at `path`: a telephone number (national forms read
/// in the practice's country) that the practice's outbound allow-list lets
/// out, as dialled (see [`TransferTo::Number`]).
fn transfer_number(
    ctx: &mut Ctx<'_>,
    path: &str,
    raw: &str,
    place: &Place<'_>,
    dialled: &mut Vec<(E164, String)>,
) -> Option<E164> {
    let expected = "expected E.164 such as +33612345678, or a national number";
    let Some((n, d)) =
        normalize(raw, place.country).and_then(|n| classify(n.as_str()).ok().map(|d| (n, d)))
    else {
        let short = classify(raw).is_ok_and(|d| {
            matches!(
                d.class,
                DestinationClass::Emergency | DestinationClass::Short
            )
        });
        let why = if short {
            format!(
                "{raw:?} is a short code, a caller is transferred to a full number ({expected})"
            )
        } else {
            format!("{raw:?} ({expected})")
        };
        ctx.err(path, format!("not a telephone number: {why}"));
        return None;
    };
    if let Some(allow) = place.allow {
        if !allow.allows(&d) {
            ctx.err(
                path,
                format!(
                    "{} ({}) is not allowed by the practice's outbound allow-list ({}): allow its class in outbound.allow or the number in outbound.allow_numbers",
                    d.dial,
                    d.class.as_str(),
                    allow.describe()
                ),
            );
            return None;
        }
    }
    dialled.push((n.clone(), path.to_string()));
    // The form the trunk is given (an overseas number's own country code).
    Some(normalize(&d.dial, place.country).unwrap_or(n))
}

/// `[card]`, present at `v`. Each `[[card.entries]]` is deserialized on
/// its own, so that a broken entry does not hide the problems of the
/// next; a label is checked for duplicates even when the rest of its entry
/// is broken.
fn card(ctx: &mut Ctx<'_>, v: &Spanned<DeValue<'_>>) -> Option<PracticeCard> {
    let m = ctx.mark();
    let src = ctx.src;
    let r: Option<raw::Card> = src.de_unit(v, "card", ctx.errors);
    if let Some(r) = &r {
        card_text(
            ctx,
            "card.summary",
            &r.summary,
            PracticeCard::MAX_SUMMARY_CHARS,
            true,
        );
    }
    let list = "card.entries";
    let elements: Vec<(String, &Spanned<DeValue<'_>>)> =
        match get(v, "entries").map(Spanned::get_ref) {
            None => Vec::new(),
            Some(DeValue::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, e)| (index(list, i), e))
                .collect(),
            Some(_) => {
                ctx.err(list, format!("expected an array of tables ([[{list}]])"));
                Vec::new()
            }
        };
    if let Some((p, _)) = elements.get(PracticeCard::MAX_ENTRIES) {
        ctx.err(
            p,
            format!(
                "too many card entries: at most {}, got {}",
                PracticeCard::MAX_ENTRIES,
                elements.len()
            ),
        );
    }
    let mut labels: HashMap<String, String> = HashMap::new();
    let mut entries = Vec::new();
    for (p, e) in &elements {
        if let Some(label) = get_str(e, "label") {
            let key = label.trim().to_lowercase();
            if let Some(first) = labels.get(&key) {
                ctx.err(
                    &join(p, "label"),
                    format!("card entry label {label:?} is already used by {first} (labels are compared ignoring case and surrounding spaces)"),
                );
            } else {
                labels.insert(key, p.clone());
            }
        }
        let r: Option<raw::CardEntry> = src.de_unit(e, p, ctx.errors);
        if let Some(r) = r {
            card_text(
                ctx,
                &join(p, "label"),
                &r.label,
                CardEntry::MAX_LABEL_CHARS,
                false,
            );
            card_text(
                ctx,
                &join(p, "text"),
                &r.text,
                CardEntry::MAX_TEXT_CHARS,
                true,
            );
            entries.push(CardEntry {
                label: r.label,
                text: r.text,
            });
        }
    }
    let summary = r?.summary;
    ctx.clean_since(m)
        .then_some(PracticeCard { summary, entries })
}

/// Checks a card text at `path`: not blank, at most `max` characters
/// (not bytes), no control character; with `multiline`, newlines (also
/// as CRLF) and tabs are allowed.
fn card_text(ctx: &mut Ctx<'_>, path: &str, s: &str, max: usize, multiline: bool) {
    if s.trim().is_empty() {
        ctx.err(path, "must not be empty");
        return;
    }
    let n = s.chars().count();
    if n > max {
        ctx.err(path, format!("too long: at most {max} characters, got {n}"));
    }
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let allowed =
            multiline && (c == '\n' || c == '\t' || (c == '\r' && chars.peek() == Some(&'\n')));
        if c.is_control() && !allowed {
            let what = if multiline {
                "control characters other than newline and tab"
            } else {
                "control characters (it is one line)"
            };
            ctx.err(
                path,
                format!("must not contain {what}: found U+{:04X}", u32::from(c)),
            );
            return;
        }
    }
}

/// `n` minutes.
fn minutes(n: u32) -> std::time::Duration {
    std::time::Duration::from_secs(60 * u64::from(n))
}

fn routing(ctx: &mut Ctx<'_>, r: raw::Routing, shared: &Shared<'_>) -> Option<Routing> {
    let m = ctx.mark();
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, a) in r.dedicated.iter().enumerate() {
        let p = index("routing.dedicated", i);
        if !shared.known_agents.contains(a) {
            ctx.err(&p, format!("agent {a:?} is not defined in [[agents]]"));
        } else if !seen.insert(a) {
            ctx.err(&p, format!("agent {a:?} is listed twice"));
        }
    }
    let priority = r
        .priority
        .and_then(|v| ctx.range("routing.priority", v, -1000, 1000))
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(0);
    let max_wait = ctx.secs("routing.max_wait_seconds", r.max_wait_seconds, 10, 86_400);
    let d = shared.dispatcher;
    let wrap_up = match r.wrap_up_seconds {
        Some(v) => ctx.secs("routing.wrap_up_seconds", v, 0, 3600),
        None => d.default_wrap_up,
    };
    let ring_timeout = match r.ring_timeout_seconds {
        Some(v) => ctx.secs("routing.ring_timeout_seconds", v, 5, 300),
        None => d.default_ring_timeout,
    };
    if r.steps.is_empty() {
        ctx.err(
            "routing.steps",
            "at least one [[routing.steps]] is required",
        );
    }
    let mut steps: Vec<ConfiguredStep> = Vec::new();
    let mut previous: Option<i64> = None;
    for (i, s) in r.steps.iter().enumerate() {
        let p = index("routing.steps", i);
        let ap = join(&p, "after_seconds");
        match previous {
            None if s.after_seconds != 0 => ctx.err(
                &ap,
                format!("the first step must start at 0, got {}", s.after_seconds),
            ),
            Some(prev) if s.after_seconds <= prev => ctx.err(
                &ap,
                format!(
                    "must be greater than the previous step's after_seconds ({prev}), got {}",
                    s.after_seconds
                ),
            ),
            _ => {}
        }
        previous = Some(s.after_seconds);
        let after = ctx.secs(&ap, s.after_seconds.max(0), 0, 86_400);
        if (0..=86_400).contains(&s.after_seconds)
            && (10..=86_400).contains(&r.max_wait_seconds)
            && s.after_seconds >= r.max_wait_seconds
        {
            ctx.err(
                &ap,
                format!(
                    "the step would never apply: it starts at or after max_wait_seconds ({})",
                    r.max_wait_seconds
                ),
            );
        }
        if !s.dedicated && s.pool.is_none() && s.skill.is_none() && s.language.is_none() {
            ctx.err(
                &p,
                "a step needs at least one criterion: dedicated = true, pool, skill or language",
            );
        }
        if s.dedicated && r.dedicated.is_empty() {
            ctx.err(
                &join(&p, "dedicated"),
                "dedicated = true but routing.dedicated lists no agent",
            );
        }
        if let Some(pool) = &s.pool {
            if !shared.known_pools.contains(pool) {
                ctx.err(
                    &join(&p, "pool"),
                    format!("pool {pool:?} is not defined in [[pools]]"),
                );
            }
        }
        if let Some(skill) = &s.skill {
            ctx.skill(&join(&p, "skill"), skill);
        }
        let min_level = match s.min_level {
            None => 1,
            Some(l) => {
                if s.skill.is_none() {
                    ctx.err(&join(&p, "min_level"), "min_level needs a skill");
                }
                ctx.range(&join(&p, "min_level"), l, 1, 5)
                    .and_then(|l| u8::try_from(l).ok())
                    .unwrap_or(1)
            }
        };
        if let Some(l) = &s.language {
            ctx.language(&join(&p, "language"), l);
        }
        steps.push(ConfiguredStep {
            step: RoutingStep {
                after,
                select: Selector {
                    dedicated: s.dedicated,
                    pool: s.pool.as_deref().map(PoolId::from),
                    skill: s.skill.clone(),
                    min_level,
                    language: s.language.clone(),
                },
            },
            origin: origin(ctx.src, &p),
        });
    }
    let overflow = match (r.overflow.action, &r.overflow.pool) {
        (OverflowAction::Pool, None) => {
            ctx.err("routing.overflow.pool", "required when action = \"pool\"");
            None
        }
        (OverflowAction::Pool, Some(pool)) => {
            if !shared.known_pools.contains(pool) {
                ctx.err(
                    "routing.overflow.pool",
                    format!("pool {pool:?} is not defined in [[pools]]"),
                );
            }
            Some(OverflowTarget::Pool(PoolId::from(pool.as_str())))
        }
        (_, Some(_)) => {
            ctx.err(
                "routing.overflow.pool",
                "only allowed when action = \"pool\"",
            );
            None
        }
        (OverflowAction::Voicemail, None) => Some(OverflowTarget::Voicemail),
        (OverflowAction::Callback, None) => Some(OverflowTarget::Callback),
        (OverflowAction::Hangup, None) => Some(OverflowTarget::Hangup),
    };
    let overflow = overflow?;
    ctx.clean_since(m).then_some(Routing {
        dedicated: r.dedicated,
        priority,
        max_wait,
        wrap_up,
        ring_timeout,
        steps,
        overflow,
    })
}
