//! Validation of the main file: `[sip]`, `[rtp]`, `[http]`, `[records]`,
//! `[dispatcher]`, `[outbound]`, `[[trunks]]`, `[[agents]]`, `[[pools]]`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use permanence_calendar::{HolidayRule, Schedule, WeeklyHours};
use serde::de::DeserializeOwned;
use toml::de::DeValue;
use toml::Spanned;

use crate::check::{is_email, is_hostname, is_id, is_text, is_username, Ctx, ID_RULE};
use crate::error::{ConfigError, Origin};
use crate::model::{
    Agent, DigestAlgorithm, DispatcherConfig, HttpConfig, HttpUser, MailPassword, MailSettings,
    OutboundSettings, Pool, RecordsSettings, RegistrarConfig, Role, RtpConfig, SipConfig,
    SipLimits, SrtpPolicy, StartTls, TlsFiles, Trunk,
};
use crate::raw;
use crate::source::{self, get, get_str, index, join, Source};

/// What was read from the main file; sections that failed are `None` (their
/// errors are in the loader's list).
pub(crate) struct MainParts {
    pub src: Source,
    pub dialplans_dir: Option<PathBuf>,
    pub sip: Option<SipConfig>,
    pub rtp: Option<RtpConfig>,
    pub http: Option<HttpConfig>,
    pub dispatcher: DispatcherConfig,
    pub records: RecordsSettings,
    /// `[outbound]` (defaults when absent or broken: its errors are in the
    /// loader's list).
    pub outbound: OutboundSettings,
    /// `[mail]`, `None` when absent or broken (its errors are in the
    /// loader's list).
    pub mail: Option<MailSettings>,
    pub trunks: Vec<Trunk>,
    pub agents: Vec<Agent>,
    pub pools: Vec<Pool>,
    /// User names of every `[[agents]]` entry, valid or not, so references
    /// to a broken agent are not also reported as undefined.
    pub known_agents: HashSet<String>,
    /// Ids of every `[[pools]]` entry, valid or not.
    pub known_pools: HashSet<String>,
    /// Non-fatal findings.
    pub warnings: Vec<ConfigError>,
}

/// The elements of an array of tables, with their paths; reports a key that
/// is not an array.
pub(crate) fn elements<'a, 'i>(
    ctx: &mut Ctx<'_>,
    root: &'a Spanned<DeValue<'i>>,
    key: &str,
) -> Vec<(String, &'a Spanned<DeValue<'i>>)> {
    match get(root, key).map(Spanned::get_ref) {
        None => Vec::new(),
        Some(DeValue::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (index(key, i), v))
            .collect(),
        Some(_) => {
            ctx.err(key, format!("expected an array of tables ([[{key}]])"));
            Vec::new()
        }
    }
}

fn section<T: DeserializeOwned>(
    src: &Source,
    root: &Spanned<DeValue<'_>>,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    get(root, key).and_then(|v| src.de_unit(v, key, errors))
}

/// Loads and validates the main file. `None` when it cannot be read or
/// parsed at all.
pub(crate) fn load_main(path: &Path, errors: &mut Vec<ConfigError>) -> Option<MainParts> {
    let text = match source::read_text(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let mut src = Source::new(path, &text);
    let root = source::parse(&mut src, &text, errors)?;
    let _top: Option<raw::MainTop> = src.de_unit(&root, "", errors);

    let dir = path.parent().unwrap_or(Path::new(""));
    let dialplans_dir = get_str(&root, "dialplans_dir").map(|d| dir.join(d));

    let sip_raw: Option<raw::Sip> = section(&src, &root, "sip", errors);
    let rtp_raw: Option<raw::Rtp> = section(&src, &root, "rtp", errors);
    let http_raw: Option<raw::Http> = section(&src, &root, "http", errors);
    let disp_raw: Option<raw::Dispatcher> = section(&src, &root, "dispatcher", errors);
    let records_raw: Option<raw::Records> = section(&src, &root, "records", errors);
    let outbound_raw: Option<raw::Outbound> = section(&src, &root, "outbound", errors);
    let mail_raw: Option<raw::Mail> = section(&src, &root, "mail", errors);

    let mut warnings = Vec::new();
    let mut ctx = Ctx { src: &src, errors };
    if let Some(d) = get_str(&root, "dialplans_dir") {
        if d.trim().is_empty() {
            ctx.err("dialplans_dir", "must not be empty");
        }
    }
    let sip = sip_raw.and_then(|r| sip(&mut ctx, r));
    let rtp = rtp_raw.and_then(|r| rtp(&mut ctx, r));
    let http = http_raw.and_then(|r| http(&mut ctx, r, sip.as_ref()));
    let dispatcher = dispatcher(&mut ctx, disp_raw.unwrap_or_default());
    let records = records(&mut ctx, records_raw.unwrap_or_default());
    let outbound = outbound(&mut ctx, outbound_raw.unwrap_or_default());
    let mail = mail_raw.and_then(|r| mail(&mut ctx, r));

    // Trunks.
    let mut trunks: Vec<Trunk> = Vec::new();
    let mut trunk_names: HashMap<String, String> = HashMap::new();
    // Every source that parses, per trunk, even when the trunk has other
    // errors, so overlaps are reported in one pass.
    let mut parsed: Vec<(String, Vec<(usize, IpNet)>)> = Vec::new();
    for (p, v) in elements(&mut ctx, &root, "trunks") {
        if let Some(name) = get_str(v, "name") {
            if let Some(first) = trunk_names.get(&name) {
                ctx.err(
                    &join(&p, "name"),
                    format!("duplicate trunk name {name:?} (also {first})"),
                );
            } else {
                trunk_names.insert(name, p.clone());
            }
        }
        let r: Option<raw::Trunk> = src.de_unit(v, &p, ctx.errors);
        if let Some(r) = r {
            let (t, nets) = trunk(&mut ctx, &p, r);
            parsed.push((p.clone(), nets));
            trunks.extend(t);
        }
    }
    trunk_overlaps(&mut ctx, &parsed);
    for t in &trunks {
        for (i, n) in t.sources.iter().enumerate() {
            if n.prefix_len() == 0 {
                warnings.push(src.err(
                    &index(&join(&t.origin.field, "sources"), i),
                    format!("{n} accepts calls from any address"),
                ));
            }
        }
    }
    if get(&root, "trunks").is_none() {
        ctx.err(
            "trunks",
            "at least one [[trunks]] is required to receive calls",
        );
    }

    // Agents.
    let mut agents: Vec<Agent> = Vec::new();
    let mut known_agents: HashSet<String> = HashSet::new();
    let mut usernames: HashMap<String, String> = HashMap::new();
    for (p, v) in elements(&mut ctx, &root, "agents") {
        if let Some(name) = get_str(v, "username") {
            known_agents.insert(name.clone());
            if let Some(first) = usernames.get(&name) {
                ctx.err(
                    &join(&p, "username"),
                    format!("duplicate username {name:?} (also {first})"),
                );
            } else {
                usernames.insert(name, p.clone());
            }
        }
        let r: Option<raw::Agent> = src.de_unit(v, &p, ctx.errors);
        if let Some(a) = r.and_then(|r| agent(&mut ctx, &p, r)) {
            agents.push(a);
        }
    }
    if get(&root, "agents").is_none() {
        ctx.err("agents", "at least one [[agents]] is required");
    }

    // Pools.
    let mut pools: Vec<Pool> = Vec::new();
    let mut known_pools: HashSet<String> = HashSet::new();
    let mut pool_ids: HashMap<String, String> = HashMap::new();
    for (p, v) in elements(&mut ctx, &root, "pools") {
        if let Some(id) = get_str(v, "id") {
            known_pools.insert(id.clone());
            if let Some(first) = pool_ids.get(&id) {
                ctx.err(
                    &join(&p, "id"),
                    format!("duplicate pool id {id:?} (also {first})"),
                );
            } else {
                pool_ids.insert(id, p.clone());
            }
        }
        let r: Option<raw::Pool> = src.de_unit(v, &p, ctx.errors);
        if let Some(pool) = r.and_then(|r| pool(&mut ctx, &p, r, &known_agents)) {
            pools.push(pool);
        }
    }

    Some(MainParts {
        dialplans_dir,
        sip,
        rtp,
        http,
        dispatcher,
        records,
        outbound,
        mail,
        trunks,
        agents,
        pools,
        known_agents,
        known_pools,
        warnings,
        src,
    })
}

fn origin(src: &Source, path: &str) -> Origin {
    Origin {
        file: src.path.clone(),
        line: src.line_of(path),
        field: path.to_string(),
    }
}

fn socket_list(ctx: &mut Ctx<'_>, path: &str, list: &[String]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let p = index(path, i);
        match s.trim().parse::<SocketAddr>() {
            Ok(a) if out.contains(&a) => ctx.err(&p, format!("{a} is listed twice")),
            Ok(a) => out.push(a),
            Err(_) => ctx.err(
                &p,
                format!("invalid socket address {s:?}: expected IP:port such as 127.0.0.1:5060 or [::1]:5060"),
            ),
        }
    }
    out
}

/// Each stream listener (TCP, TLS, WS, WSS) needs a port of its own.
fn stream_ports_apart(
    ctx: &mut Ctx<'_>,
    tcp: &[SocketAddr],
    tls: &[SocketAddr],
    ws: &[SocketAddr],
    wss: &[SocketAddr],
) {
    let lists = [
        ("listen_tcp", tcp),
        ("listen_tls", tls),
        ("listen_ws", ws),
        ("listen_wss", wss),
    ];
    for (j, (name, list)) in lists.iter().enumerate().skip(2) {
        for (i, a) in list.iter().enumerate() {
            if let Some((other, _)) = lists.iter().take(j).find(|(_, l)| l.contains(a)) {
                ctx.err(
                    &index(&format!("sip.{name}"), i),
                    format!("{a} is also in {other}: each transport needs its own port"),
                );
            }
        }
    }
}

fn sip(ctx: &mut Ctx<'_>, r: raw::Sip) -> Option<SipConfig> {
    let m = ctx.mark();
    let listen_udp = socket_list(ctx, "sip.listen_udp", &r.listen_udp);
    let listen_tcp = socket_list(ctx, "sip.listen_tcp", &r.listen_tcp);
    let listen_tls = socket_list(ctx, "sip.listen_tls", &r.listen_tls);
    for (i, a) in listen_tls.iter().enumerate() {
        if listen_tcp.contains(a) {
            ctx.err(
                &index("sip.listen_tls", i),
                format!("{a} is also in listen_tcp: TLS needs its own port (usually 5061)"),
            );
        }
    }
    let listen_ws = socket_list(ctx, "sip.listen_ws", &r.listen_ws);
    let listen_wss = socket_list(ctx, "sip.listen_wss", &r.listen_wss);
    stream_ports_apart(ctx, &listen_tcp, &listen_tls, &listen_ws, &listen_wss);
    let tls = tls_files(ctx, &r.tls);
    if r.listen_udp.is_empty() && r.listen_tcp.is_empty() {
        ctx.err(
            "sip.listen_udp",
            "at least one listen_udp or listen_tcp address is required",
        );
    }
    if r.realm.is_empty() || !is_text(&r.realm) || r.realm.contains(['"', '\\']) {
        ctx.err(
            "sip.realm",
            "must not be empty nor contain control characters, '\"' or '\\'",
        );
    }
    let public_host = match &r.public_host {
        Some(h) => {
            let h = h.trim();
            let unbracketed = h
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .unwrap_or(h);
            match unbracketed.parse::<IpAddr>() {
                Ok(ip) if ip.is_unspecified() => {
                    ctx.err(
                        "sip.public_host",
                        format!("{ip} is not a reachable address"),
                    );
                    String::new()
                }
                Ok(ip) => ip.to_string(),
                Err(_) if is_hostname(h) => h.to_ascii_lowercase(),
                Err(_) => {
                    ctx.err(
                        "sip.public_host",
                        format!("invalid host {h:?}: expected an IP address or a DNS name, without port"),
                    );
                    String::new()
                }
            }
        }
        None => match listen_udp.first().or(listen_tcp.first()) {
            Some(a) if a.ip().is_unspecified() => {
                ctx.err(
                    "sip.public_host",
                    format!("required when the first listen address ({a}) is unspecified"),
                );
                String::new()
            }
            Some(a) => a.ip().to_string(),
            None => String::new(),
        },
    };
    let user_agent = r.user_agent.unwrap_or_else(|| "Permanence".to_string());
    if !user_agent.is_empty() {
        ctx.text("sip.user_agent", &user_agent);
    }
    let registrar = registrar(ctx, &r.registrar);
    let limits = limits(ctx, &r.limits);
    ctx.clean_since(m).then_some(SipConfig {
        listen_udp,
        listen_tcp,
        listen_tls,
        listen_ws,
        listen_wss,
        tls,
        realm: r.realm,
        public_host,
        user_agent,
        registrar,
        limits,
    })
}

fn limits(ctx: &mut Ctx<'_>, r: &raw::Limits) -> SipLimits {
    const P: &str = "sip.limits";
    let d = SipLimits::default();
    let mut trusted = Vec::new();
    for (i, s) in r.trusted.iter().enumerate() {
        let t = s.trim();
        match t
            .parse::<IpNet>()
            .ok()
            .or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from))
        {
            Some(n) => trusted.push(n.trunc()),
            None => ctx.err(
                &format!("{P}.trusted[{i}]"),
                format!(
                    "invalid CIDR {s:?}: expected an IP address or a network such as 192.0.2.0/24"
                ),
            ),
        }
    }
    SipLimits {
        source_rate: ctx.opt_u32(
            &join(P, "source_rate"),
            r.source_rate,
            d.source_rate,
            1,
            10_000,
        ),
        source_burst: ctx.opt_u32(
            &join(P, "source_burst"),
            r.source_burst,
            d.source_burst,
            1,
            100_000,
        ),
        ban_after: ctx.opt_u32(
            &join(P, "ban_after"),
            r.ban_after,
            d.ban_after,
            1,
            1_000_000,
        ),
        ban_for: ctx.opt_secs(&join(P, "ban_seconds"), r.ban_seconds, 60, 1, 86_400),
        total_rate: ctx.opt_u32(
            &join(P, "total_rate"),
            r.total_rate,
            d.total_rate,
            1,
            100_000,
        ),
        trusted,
        max_connections: ctx.opt_u32(
            &join(P, "max_connections"),
            r.max_connections,
            d.max_connections,
            1,
            1_000_000,
        ),
        max_connections_per_source: ctx.opt_u32(
            &join(P, "max_connections_per_source"),
            r.max_connections_per_source,
            d.max_connections_per_source,
            1,
            100_000,
        ),
        idle: ctx.opt_secs(&join(P, "idle_seconds"), r.idle_seconds, 120, 1, 86_400),
        max_calls: ctx.opt_u32(
            &join(P, "max_calls"),
            r.max_calls,
            d.max_calls,
            1,
            1_000_000,
        ),
        max_heap_mb: ctx.opt_u32(
            &join(P, "max_heap_mb"),
            r.max_heap_mb,
            d.max_heap_mb,
            1,
            1_048_576,
        ),
    }
}

fn tls_files(ctx: &mut Ctx<'_>, r: &raw::Tls) -> TlsFiles {
    const P: &str = "sip.tls";
    let d = TlsFiles::default();
    let mut path =
        |name: &str, v: &Option<String>, default: &PathBuf| match v.as_deref().map(str::trim) {
            None => default.clone(),
            Some("") => {
                ctx.err(&join(P, name), "must not be empty");
                default.clone()
            }
            Some(p) => PathBuf::from(p),
        };
    let cert = path("cert", &r.cert, &d.cert);
    let key = path("key", &r.key, &d.key);
    match (&r.cert, &r.key) {
        (None, None) => TlsFiles {
            cert,
            key,
            self_signed: true,
        },
        (Some(_), Some(_)) => TlsFiles {
            cert,
            key,
            self_signed: false,
        },
        (Some(_), None) => {
            ctx.err(&join(P, "key"), "required with sip.tls.cert");
            d
        }
        (None, Some(_)) => {
            ctx.err(&join(P, "cert"), "required with sip.tls.key");
            d
        }
    }
}

fn registrar(ctx: &mut Ctx<'_>, r: &raw::Registrar) -> RegistrarConfig {
    const P: &str = "sip.registrar";
    let d = RegistrarConfig::default();
    let max = ctx.opt_u32(
        &join(P, "max_expires"),
        r.max_expires,
        d.max_expires,
        1,
        604_800,
    );
    let min = ctx.opt_u32(
        &join(P, "min_expires"),
        r.min_expires,
        d.min_expires.min(max),
        1,
        604_800,
    );
    if min > max {
        ctx.err(
            &join(P, "min_expires"),
            format!("min_expires ({min}) is greater than max_expires ({max})"),
        );
    }
    let default = ctx.opt_u32(
        &join(P, "default_expires"),
        r.default_expires,
        d.default_expires.clamp(min.min(max), max),
        1,
        604_800,
    );
    if r.default_expires.is_some() && (default < min || default > max) {
        ctx.err(
            &join(P, "default_expires"),
            format!("must be between min_expires ({min}) and max_expires ({max}), got {default}"),
        );
    }
    let nonce_ttl = ctx.opt_secs(
        &join(P, "nonce_ttl_seconds"),
        r.nonce_ttl_seconds,
        300,
        10,
        86_400,
    );
    let interval = ctx.opt_u32(
        &join(P, "qualify_interval_seconds"),
        r.qualify_interval_seconds,
        30,
        0,
        3600,
    );
    if (1..5).contains(&interval) {
        ctx.err(
            &join(P, "qualify_interval_seconds"),
            format!("must be 0 (disabled) or at least 5, got {interval}"),
        );
    }
    let timeout = ctx.opt_u32(
        &join(P, "qualify_timeout_seconds"),
        r.qualify_timeout_seconds,
        5,
        1,
        60,
    );
    if interval >= 5 && timeout > interval {
        ctx.err(
            &join(P, "qualify_timeout_seconds"),
            format!("must not exceed qualify_interval_seconds ({interval}), got {timeout}"),
        );
    }
    let mut algorithms = Vec::new();
    match &r.algorithms {
        None => algorithms = d.algorithms.clone(),
        Some(list) => {
            for (i, a) in list.iter().enumerate() {
                let field = format!("{P}.algorithms[{i}]");
                let alg = if a.eq_ignore_ascii_case("MD5") {
                    DigestAlgorithm::Md5
                } else if a.eq_ignore_ascii_case("SHA-256") {
                    DigestAlgorithm::Sha256
                } else {
                    ctx.err(
                        &field,
                        format!("unknown digest algorithm {a:?}: expected \"SHA-256\" or \"MD5\""),
                    );
                    continue;
                };
                if algorithms.contains(&alg) {
                    ctx.err(&field, format!("{} is listed twice", alg.token()));
                } else {
                    algorithms.push(alg);
                }
            }
            if list.is_empty() {
                ctx.err(&join(P, "algorithms"), "must list at least one algorithm");
            }
        }
    }
    RegistrarConfig {
        algorithms,
        min_expires: min,
        max_expires: max,
        default_expires: default,
        nonce_ttl,
        qualify_interval: (interval > 0)
            .then(|| std::time::Duration::from_secs(u64::from(interval))),
        qualify_timeout: std::time::Duration::from_secs(u64::from(timeout)),
    }
}

fn ip(ctx: &mut Ctx<'_>, path: &str, s: &str) -> Option<IpAddr> {
    match s.trim().parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            ctx.err(path, format!("invalid IP address {s:?}"));
            None
        }
    }
}

fn rtp(ctx: &mut Ctx<'_>, r: raw::Rtp) -> Option<RtpConfig> {
    let m = ctx.mark();
    let bind = ip(ctx, "rtp.bind", &r.bind);
    let advertise = match (&r.advertise, bind) {
        (Some(a), _) => {
            let a = ip(ctx, "rtp.advertise", a);
            if let Some(a) = a {
                if a.is_unspecified() || a.is_multicast() {
                    ctx.err("rtp.advertise", format!("{a} cannot be written in SDP: give the address peers should send media to"));
                } else if bind.is_some_and(|b| b.is_ipv4() != a.is_ipv4()) {
                    ctx.err("rtp.advertise", "must be of the same IP version as bind");
                }
            }
            a
        }
        (None, Some(b)) if b.is_unspecified() => {
            ctx.err(
                "rtp.advertise",
                format!("required when bind is {b}: SDP needs an address peers can reach"),
            );
            None
        }
        (None, b) => b,
    };
    if bind.is_some_and(|b| b.is_multicast()) {
        ctx.err("rtp.bind", "must not be a multicast address");
    }
    let pmin = ctx.range("rtp.port_min", r.port_min, 1024, 65535);
    let pmax = ctx.range("rtp.port_max", r.port_max, 1024, 65535);
    if let (Some(lo), Some(hi)) = (pmin, pmax) {
        if lo >= hi {
            ctx.err(
                "rtp.port_max",
                format!("port range is inverted or empty: port_max ({hi}) must be greater than port_min ({lo})"),
            );
        } else if lo % 2 != 0 {
            ctx.err(
                "rtp.port_min",
                format!("must be even (RTP uses even ports, RTCP the next odd one), got {lo}"),
            );
        } else if hi % 2 == 0 {
            ctx.err(
                "rtp.port_max",
                format!("must be odd so the range holds whole RTP/RTCP port pairs, got {hi}"),
            );
        } else if hi - lo + 1 < 4 {
            ctx.err(
                "rtp.port_max",
                format!(
                    "port range too small: {} ports, at least 4 are needed (a call has a caller leg and an agent leg, each an RTP/RTCP pair)",
                    hi - lo + 1
                ),
            );
        }
    }
    let probation = ctx.opt_u32(
        "rtp.probation_packets",
        r.probation_packets,
        u32::from(RtpConfig::DEFAULT_PROBATION),
        1,
        20,
    );
    if !ctx.clean_since(m) {
        return None;
    }
    Some(RtpConfig {
        bind: bind?,
        advertise: advertise?,
        port_min: u16::try_from(pmin?).ok()?,
        port_max: u16::try_from(pmax?).ok()?,
        probation_packets: u8::try_from(probation).ok()?,
    })
}

fn http(ctx: &mut Ctx<'_>, r: raw::Http, sip: Option<&SipConfig>) -> Option<HttpConfig> {
    let Ok(listen) = r.listen.trim().parse::<SocketAddr>() else {
        ctx.err(
            "http.listen",
            format!(
                "invalid socket address {:?}: expected IP:port such as 127.0.0.1:8080",
                r.listen
            ),
        );
        return None;
    };
    if listen.port() != 0 && sip.is_some_and(|s| s.listen_tcp.contains(&listen)) {
        ctx.err(
            "http.listen",
            format!("{listen} is also a sip.listen_tcp address"),
        );
        return None;
    }
    let admin_token = match r.admin_token {
        None => None,
        Some(t) => {
            let t = t.trim().to_string();
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                ctx.err(
                    "http.admin_token",
                    "must be at least 16 printable ASCII characters without spaces",
                );
                return None;
            }
            Some(t)
        }
    };
    let users = http_users(ctx, &r.users);
    let console_minutes = ctx.opt_u32(
        "http.console_session_minutes",
        r.console_session_minutes,
        HttpConfig::DEFAULT_CONSOLE_SESSION_MINUTES,
        5,
        1440,
    );
    Some(HttpConfig {
        listen,
        admin_token,
        users,
        tls: r.tls,
        console_session: std::time::Duration::from_secs(u64::from(console_minutes) * 60),
    })
}

fn http_users(ctx: &mut Ctx<'_>, users: &[raw::HttpUser]) -> Vec<HttpUser> {
    let mut out: Vec<HttpUser> = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let p = format!("http.users[{i}]");
        if !is_id(&u.name) {
            ctx.err(
                &join(&p, "name"),
                format!("invalid user name {:?}: {ID_RULE}", u.name),
            );
        } else if out.iter().any(|o| o.name == u.name) {
            ctx.err(
                &join(&p, "name"),
                format!("user {:?} is defined twice", u.name),
            );
        }
        let Some(role) = Role::parse(&u.role) else {
            ctx.err(
                &join(&p, "role"),
                format!(
                    "unknown role {:?}: expected \"viewer\", \"supervisor\" or \"admin\"",
                    u.role
                ),
            );
            continue;
        };
        let hash = u.token_sha256.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            ctx.err(
                &join(&p, "token_sha256"),
                "must be 64 hex digits (the SHA-256 of the token: `permanence new-token` prints one)",
            );
            continue;
        }
        out.push(HttpUser {
            name: u.name.clone(),
            role,
            token_sha256: hash,
            revoked: u.revoked,
        });
    }
    out
}

fn records(ctx: &mut Ctx<'_>, r: raw::Records) -> RecordsSettings {
    const P: &str = "records";
    let d = RecordsSettings::default();
    let path = match r.path.as_deref().map(str::trim) {
        None => d.path.clone(),
        Some("") => {
            ctx.err(&join(P, "path"), "must not be empty");
            d.path.clone()
        }
        Some(p) => PathBuf::from(p),
    };
    let voicemail_dir = match r.voicemail_dir.as_deref().map(str::trim) {
        None => d.voicemail_dir.clone(),
        Some("") => {
            ctx.err(&join(P, "voicemail_dir"), "must not be empty");
            d.voicemail_dir.clone()
        }
        Some(p) => PathBuf::from(p),
    };
    let days = ctx.opt_u32(&join(P, "retention_days"), r.retention_days, 365, 1, 3650);
    let audit_days = ctx.opt_u32(
        &join(P, "audit_retention_days"),
        r.audit_retention_days,
        365,
        1,
        3650,
    );
    let hash_callers = r.hash_callers.unwrap_or(false);
    let salt = r.salt.unwrap_or_default();
    if hash_callers && salt.trim().is_empty() {
        ctx.err(
            &join(P, "salt"),
            "a non-empty salt is required when hash_callers = true",
        );
    }
    let vm = ctx.opt_secs(
        &join(P, "voicemail_max_seconds"),
        r.voicemail_max_seconds,
        120,
        10,
        600,
    );
    RecordsSettings {
        path,
        retention: std::time::Duration::from_secs(u64::from(days) * 86_400),
        audit_retention: std::time::Duration::from_secs(u64::from(audit_days) * 86_400),
        hash_callers,
        salt,
        voicemail_dir,
        voicemail_max: vm,
    }
}

/// `[mail]`; `None` when it has errors.
fn mail(ctx: &mut Ctx<'_>, r: raw::Mail) -> Option<MailSettings> {
    const P: &str = "mail";
    let m = ctx.mark();
    let server = r.server.trim().to_owned();
    if server.parse::<IpAddr>().is_err() && !is_hostname(&server) {
        ctx.err(
            &join(P, "server"),
            format!("not a host name or IP address: {server:?}"),
        );
    }
    let port = ctx.opt_u32(&join(P, "port"), r.port, 587, 1, 65_535);
    let starttls = match r.starttls.as_deref().map(str::trim) {
        None | Some("required") => StartTls::Required,
        Some("opportunistic") => StartTls::Opportunistic,
        Some("off") => StartTls::Off,
        Some(other) => {
            ctx.err(
                &join(P, "starttls"),
                format!(
                    "unknown value {other:?}: expected \"required\", \"opportunistic\" or \"off\""
                ),
            );
            StartTls::Required
        }
    };
    let password = mail_password(ctx, &r);
    if r.username.is_some() != password.is_some() {
        ctx.err(
            &join(P, "username"),
            "username and password (or password_file) go together",
        );
    }
    if let Some(u) = &r.username {
        ctx.text(&join(P, "username"), u);
        if starttls == StartTls::Off && !is_loopback(&server) {
            ctx.err(
                &join(P, "starttls"),
                "\"off\" with a username would send the password in clear: use \"required\"",
            );
        }
    }
    if !is_email(r.from.trim()) {
        ctx.err(
            &join(P, "from"),
            format!("not an e-mail address: {:?}", r.from),
        );
    }
    let retry = retry_schedule(ctx, r.retry_seconds.as_deref());
    let expire = ctx.opt_u32(&join(P, "expire_hours"), r.expire_hours, 72, 1, 720);
    let timeout = ctx.opt_secs(&join(P, "timeout_seconds"), r.timeout_seconds, 30, 1, 300);
    ctx.clean_since(m).then(|| MailSettings {
        server,
        port: u16::try_from(port).unwrap_or(587),
        starttls,
        username: r.username.clone(),
        password,
        from: r.from.trim().to_owned(),
        retry,
        expire_after: std::time::Duration::from_secs(u64::from(expire) * 3600),
        timeout,
    })
}

/// `mail.password` or `mail.password_file`, not both.
fn mail_password(ctx: &mut Ctx<'_>, r: &raw::Mail) -> Option<MailPassword> {
    match (&r.password, &r.password_file) {
        (Some(_), Some(_)) => {
            ctx.err(
                "mail.password_file",
                "give password or password_file, not both",
            );
            None
        }
        (Some(p), None) if p.is_empty() => {
            ctx.err("mail.password", "must not be empty");
            None
        }
        (Some(p), None) => Some(MailPassword::Inline(p.clone())),
        (None, Some(f)) if f.trim().is_empty() => {
            ctx.err("mail.password_file", "must not be empty");
            None
        }
        (None, Some(f)) => Some(MailPassword::File(PathBuf::from(f.trim()))),
        (None, None) => None,
    }
}

/// `mail.retry_seconds`: 1 to 20 delays of 1 s to 1 day.
fn retry_schedule(ctx: &mut Ctx<'_>, v: Option<&[i64]>) -> Vec<std::time::Duration> {
    let Some(list) = v else {
        return [60, 300, 900, 1800, 3600]
            .map(std::time::Duration::from_secs)
            .to_vec();
    };
    if list.is_empty() || list.len() > 20 {
        ctx.err("mail.retry_seconds", "needs 1 to 20 delays");
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| ctx.secs(&index("mail.retry_seconds", i), *s, 1, 86_400))
        .collect()
}

/// Whether the SMTP server is on this machine (no password crosses the
/// network).
fn is_loopback(server: &str) -> bool {
    server == "localhost" || server.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

fn dispatcher(ctx: &mut Ctx<'_>, r: raw::Dispatcher) -> DispatcherConfig {
    const P: &str = "dispatcher";
    let d = DispatcherConfig::default();
    DispatcherConfig {
        strategy: r.strategy.unwrap_or(d.strategy),
        max_no_answer_strikes: ctx.opt_u32(
            &join(P, "max_no_answer_strikes"),
            r.max_no_answer_strikes,
            3,
            1,
            100,
        ),
        busy_backoff: ctx.opt_secs(
            &join(P, "busy_backoff_seconds"),
            r.busy_backoff_seconds,
            10,
            0,
            3600,
        ),
        no_answer_backoff: ctx.opt_secs(
            &join(P, "no_answer_backoff_seconds"),
            r.no_answer_backoff_seconds,
            10,
            0,
            3600,
        ),
        default_ring_timeout: ctx.opt_secs(
            &join(P, "default_ring_timeout_seconds"),
            r.default_ring_timeout_seconds,
            20,
            5,
            300,
        ),
        default_wrap_up: ctx.opt_secs(
            &join(P, "default_wrap_up_seconds"),
            r.default_wrap_up_seconds,
            30,
            0,
            3600,
        ),
        default_handle: ctx.opt_secs(
            &join(P, "default_handle_seconds"),
            r.default_handle_seconds,
            180,
            10,
            7200,
        ),
    }
}

fn outbound(ctx: &mut Ctx<'_>, r: raw::Outbound) -> OutboundSettings {
    const P: &str = "outbound";
    let d = OutboundSettings::default();
    let allow = ctx
        .allow_list_or(
            &join(P, "allow"),
            r.allow.as_deref(),
            &join(P, "allow_numbers"),
            r.allow_numbers.as_deref(),
            &d.allow,
        )
        .unwrap_or_else(|| d.allow.clone());
    OutboundSettings {
        allow,
        max_calls_per_agent: ctx.opt_u32(
            &join(P, "max_calls_per_agent"),
            r.max_calls_per_agent,
            d.max_calls_per_agent,
            1,
            10,
        ),
        ring_timeout: ctx.opt_secs(
            &join(P, "ring_timeout_seconds"),
            r.ring_timeout_seconds,
            60,
            10,
            300,
        ),
        recent_practice: std::time::Duration::from_secs(
            60 * u64::from(ctx.opt_u32(
                &join(P, "recent_practice_minutes"),
                r.recent_practice_minutes,
                30,
                0,
                1440,
            )),
        ),
    }
}

/// A trunk (when valid) and the sources that parse, by index.
fn trunk(ctx: &mut Ctx<'_>, p: &str, r: raw::Trunk) -> (Option<Trunk>, Vec<(usize, IpNet)>) {
    let m = ctx.mark();
    if !is_id(&r.name) {
        ctx.err(
            &join(p, "name"),
            format!("invalid trunk name {:?}: {ID_RULE}", r.name),
        );
    }
    let sp = join(p, "sources");
    if r.sources.is_empty() {
        ctx.err(&sp, "at least one source address or network is required");
    }
    let mut nets = Vec::new();
    for (i, s) in r.sources.iter().enumerate() {
        let t = s.trim();
        let net = t
            .parse::<IpNet>()
            .ok()
            .or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from));
        match net {
            Some(n) => nets.push((i, n.trunc())),
            None => ctx.err(
                &index(&sp, i),
                format!(
                    "invalid CIDR {s:?}: expected an IP address or a network such as 192.0.2.0/24"
                ),
            ),
        }
    }
    let outbound = match r.outbound.as_deref().map(str::trim) {
        None => None,
        Some(o) => {
            match o.parse::<SocketAddr>() {
                Ok(a) if !a.ip().is_unspecified() && a.port() != 0 => Some(a),
                _ => {
                    ctx.err(
                    &join(p, "outbound"),
                    format!("invalid outbound address {o:?}: expected IP:port, such as 192.0.2.10:5060"),
                );
                    None
                }
            }
        }
    };
    let trunk = ctx.clean_since(m).then(|| Trunk {
        name: r.name,
        outbound,
        sources: nets.iter().map(|(_, n)| *n).collect(),
        origin: origin(ctx.src, p),
    });
    (trunk, nets)
}

/// Trunk sources must not overlap, so a source address names one trunk.
/// `parsed` holds, per trunk path, the sources that parse. Each source that
/// overlaps a source written before it is reported once, naming the first
/// such source.
fn trunk_overlaps(ctx: &mut Ctx<'_>, parsed: &[(String, Vec<(usize, IpNet)>)]) {
    let mut all: Vec<(&str, usize, IpNet)> = Vec::new();
    for (p, nets) in parsed {
        for (i, n) in nets {
            all.push((p.as_str(), *i, *n));
        }
    }
    let nets: Vec<IpNet> = all.iter().map(|(_, _, n)| *n).collect();
    for (later, earlier) in overlapping_pairs(&nets) {
        let (Some((lp, li, ln)), Some((ep, ei, en))) = (all.get(later), all.get(earlier)) else {
            continue;
        };
        let what = if ep == lp {
            format!("sources[{ei}] ({en})")
        } else {
            format!("{en} ({ep}.sources[{ei}])")
        };
        ctx.err(
            &index(&join(lp, "sources"), *li),
            format!("{ln} overlaps {what}"),
        );
    }
}

/// For each network that overlaps one listed before it, `(its index, the
/// index of the first earlier network it overlaps)`, sorted by index.
///
/// CIDR networks are nested or disjoint. Sorted by first address (widest
/// first), the networks containing the current one are exactly those left
/// on a stack from which every network ending before the current one
/// starts has been popped; the stack is at most 129 deep, so this is
/// O(n log n) rather than pairwise.
pub(crate) fn overlapping_pairs(nets: &[IpNet]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..nets.len()).collect();
    order.sort_by_key(|&i| nets.get(i).map(|n| (n.network(), n.prefix_len(), i)));
    let mut first: HashMap<usize, usize> = HashMap::new();
    let mut stack: Vec<usize> = Vec::new();
    for &cur in &order {
        let Some(c) = nets.get(cur) else { continue };
        while let Some(top) = stack.last().and_then(|&t| nets.get(t)) {
            let same_family = top.network().is_ipv6() == c.network().is_ipv6();
            if same_family && c.network() <= top.broadcast() {
                break;
            }
            stack.pop();
        }
        for &s in &stack {
            let (later, earlier) = if cur > s { (cur, s) } else { (s, cur) };
            let e = first.entry(later).or_insert(earlier);
            *e = (*e).min(earlier);
        }
        stack.push(cur);
    }
    let mut out: Vec<(usize, usize)> = first.into_iter().collect();
    out.sort_unstable();
    out
}

fn ha1(ctx: &mut Ctx<'_>, path: &str, v: Option<String>, alg: DigestAlgorithm) -> Option<String> {
    let v = v?;
    let len = v.chars().count();
    let what = match alg {
        DigestAlgorithm::Md5 => "MD5",
        DigestAlgorithm::Sha256 => "SHA-256",
    };
    if len != alg.hex_len() {
        ctx.err(
            path,
            format!(
                "expected {} hexadecimal digits ({what} of username:realm:password), got {len} characters",
                alg.hex_len()
            ),
        );
        return None;
    }
    if !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        ctx.err(path, "not hexadecimal: use only 0-9 and a-f");
        return None;
    }
    Some(v.to_ascii_lowercase())
}

/// Builds a weekly pattern from weekday keys, reporting bad and
/// overlapping ranges at `path.<day>[i]`.
pub(crate) fn weekly(
    ctx: &mut Ctx<'_>,
    path: &str,
    days: [(&str, &Option<Vec<String>>); 7],
) -> WeeklyHours {
    let mut w = WeeklyHours::default();
    for (name, ranges) in days {
        let Some(ranges) = ranges else { continue };
        let Ok(day) = permanence_calendar::parse_weekday(name) else {
            continue;
        };
        for (i, r) in ranges.iter().enumerate() {
            if let Err(e) = w.add_text(day, r) {
                ctx.err(&index(&join(path, name), i), e.to_string());
            }
        }
    }
    w
}

/// The weekday keys of a raw week, in order.
pub(crate) fn week_days(w: &raw::Week) -> [(&'static str, &Option<Vec<String>>); 7] {
    [
        ("mon", &w.mon),
        ("tue", &w.tue),
        ("wed", &w.wed),
        ("thu", &w.thu),
        ("fri", &w.fri),
        ("sat", &w.sat),
        ("sun", &w.sun),
    ]
}

pub(crate) fn timezone(ctx: &mut Ctx<'_>, path: &str, tz: Option<&str>) -> permanence_calendar::Tz {
    match tz {
        None => chrono_tz::Europe::Paris,
        Some(s) => match permanence_calendar::parse_tz(s) {
            Ok(tz) => tz,
            Err(e) => {
                ctx.err(path, e.to_string());
                chrono_tz::Europe::Paris
            }
        },
    }
}

fn agent(ctx: &mut Ctx<'_>, p: &str, r: raw::Agent) -> Option<Agent> {
    let m = ctx.mark();
    if !is_username(&r.username) {
        ctx.err(
            &join(p, "username"),
            format!(
                "invalid username {:?}: use lowercase letters, digits, '.', '_' and '-'",
                r.username
            ),
        );
    }
    ctx.text(&join(p, "display_name"), &r.display_name);
    if r.ha1_md5.is_none() && r.ha1_sha256.is_none() {
        ctx.err(
            &join(p, "ha1_md5"),
            "at least one of ha1_md5 and ha1_sha256 is required",
        );
    }
    let ha1_md5 = ha1(ctx, &join(p, "ha1_md5"), r.ha1_md5, DigestAlgorithm::Md5);
    let ha1_sha256 = ha1(
        ctx,
        &join(p, "ha1_sha256"),
        r.ha1_sha256,
        DigestAlgorithm::Sha256,
    );
    ctx.languages(&join(p, "languages"), &r.languages);
    let mut skills = BTreeMap::new();
    for (name, level) in &r.skills {
        let sp = join(&join(p, "skills"), name);
        ctx.skill(&sp, name);
        if let Some(l) = ctx
            .range(&sp, *level, 1, 5)
            .and_then(|l| u8::try_from(l).ok())
        {
            skills.insert(name.clone(), l);
        }
    }
    let tz = timezone(ctx, &join(p, "timezone"), r.timezone.as_deref());
    let wrap_up = r
        .wrap_up_seconds
        .map(|w| ctx.secs(&join(p, "wrap_up_seconds"), w, 0, 3600));
    let srtp = match r.srtp.as_deref() {
        None => SrtpPolicy::default(),
        Some(t) => SrtpPolicy::parse(t).unwrap_or_else(|| {
            ctx.err(
                &join(p, "srtp"),
                format!("unknown SRTP policy {t:?}: use \"off\", \"offer\" or \"require\""),
            );
            SrtpPolicy::default()
        }),
    };
    let outbound_allow = match (&r.outbound_allow, &r.outbound_allow_numbers) {
        (None, None) => None,
        // A restriction: what it does not name is not allowed.
        (classes, numbers) => ctx.allow_list(
            &join(p, "outbound_allow"),
            classes.as_deref().unwrap_or_default(),
            &join(p, "outbound_allow_numbers"),
            numbers.as_deref().unwrap_or_default(),
        ),
    };
    let shift = match &r.shift {
        None => Schedule::always(tz),
        Some(w) => {
            let sp = join(p, "shift");
            let weekly = weekly(ctx, &sp, week_days(w));
            if weekly.is_never_open() && ctx.clean_since(m) {
                ctx.err(
                    &sp,
                    "the shift has no hours: remove [agents.shift] for an agent without shift limit",
                );
            }
            Schedule::weekly(tz, weekly, HolidayRule::None)
        }
    };
    ctx.clean_since(m).then(|| Agent {
        username: r.username,
        display_name: r.display_name,
        ha1_md5,
        ha1_sha256,
        languages: r.languages,
        skills,
        timezone: tz,
        wrap_up,
        srtp,
        outbound_allow,
        shift,
        origin: origin(ctx.src, p),
    })
}

fn pool(ctx: &mut Ctx<'_>, p: &str, r: raw::Pool, known: &HashSet<String>) -> Option<Pool> {
    let m = ctx.mark();
    if !is_id(&r.id) {
        ctx.err(
            &join(p, "id"),
            format!("invalid pool id {:?}: {ID_RULE}", r.id),
        );
    }
    ctx.text(&join(p, "name"), &r.name);
    let ap = join(p, "agents");
    if r.agents.is_empty() {
        ctx.err(&ap, "a pool needs at least one agent");
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, a) in r.agents.iter().enumerate() {
        let ip = index(&ap, i);
        if !known.contains(a) {
            ctx.err(&ip, format!("agent {a:?} is not defined in [[agents]]"));
        } else if !seen.insert(a) {
            ctx.err(&ip, format!("agent {a:?} is listed twice"));
        }
    }
    ctx.clean_since(m).then(|| Pool {
        id: r.id,
        name: r.name,
        agents: r.agents,
        origin: origin(ctx.src, p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute(nets: &[IpNet]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (i, n) in nets.iter().enumerate() {
            if let Some(j) = nets
                .iter()
                .take(i)
                .position(|m| m.contains(&n.network()) || n.contains(&m.network()))
            {
                out.push((i, j));
            }
        }
        out
    }

    #[test]
    fn nested_chain_out_of_file_order() {
        let n = |s: &str| s.parse::<IpNet>().expect("net");
        // The /24 overlaps the earlier /16 even though the /8 (written
        // last) is the widest cover.
        let nets = [
            n("10.0.0.0/16"),
            n("10.0.1.0/24"),
            n("10.0.0.0/8"),
            n("::/0"),
        ];
        assert_eq!(overlapping_pairs(&nets), vec![(1, 0), (2, 0)]);
        let nets = [n("10.0.0.0/16"), n("10.1.0.0/24"), n("10.0.0.0/8")];
        assert_eq!(overlapping_pairs(&nets), vec![(2, 0)]);
        let nets = [n("10.0.0.0/16"), n("10.0.0.0/8"), n("10.0.1.0/24")];
        assert_eq!(overlapping_pairs(&nets), vec![(1, 0), (2, 0)]);
        let nets = [n("10.1.0.0/16"), n("10.0.0.0/8"), n("10.0.0.0/16")];
        assert_eq!(overlapping_pairs(&nets), vec![(1, 0), (2, 1)]);
    }

    proptest! {
        #[test]
        fn sweep_matches_brute_force(
            raw in proptest::collection::vec((any::<bool>(), 0u8..4, 0u8..4, 0u8..=34), 0..40)
        ) {
            // Few distinct addresses so overlaps are frequent; both families.
            let nets: Vec<IpNet> = raw
                .iter()
                .map(|&(v6, a, b, len)| {
                    if v6 {
                        let ip = std::net::Ipv6Addr::new(0x2001, 0xdb8, u16::from(a), u16::from(b), 0, 0, 0, 0);
                        IpNet::new(ip.into(), len.min(64) + 16).expect("valid").trunc()
                    } else {
                        let ip = std::net::Ipv4Addr::new(10, a, b, 0);
                        IpNet::new(ip.into(), len.min(32)).expect("valid").trunc()
                    }
                })
                .collect();
            prop_assert_eq!(overlapping_pairs(&nets), brute(&nets));
        }
    }
}
