//! `permanence queues|agents|calls|audit|callbacks`: tables from the
//! running engine's admin API, and operators' actions on callback requests
//! (address read from the configuration file; the token from
//! `PERMANENCE_TOKEN`, else the configuration's shared `http.admin_token`).

use permanence_http::{AgentView, AuditView, CallView, CallbackView, CallbacksView, QueueView};
use serde::de::DeserializeOwned;
use std::path::Path;
use std::process::ExitCode;

/// The running engine's admin API, as the configuration file locates it.
struct Api {
    cfg: permanence_config::Config,
    token: String,
    agent: ureq::Agent,
}

impl Api {
    fn connect(config: &Path) -> Result<Self, String> {
        let cfg = permanence_config::load(config).map_err(|errs| {
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        let token = std::env::var("PERMANENCE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| cfg.http.admin_token.clone())
            .ok_or("no token: set PERMANENCE_TOKEN to your [[http.users]] token")?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        Ok(Self { cfg, token, agent })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.cfg.http.listen, path)
    }

    /// Sends a GET (or an empty POST): the status and the body.
    fn send(&self, post: bool, path: &str) -> Result<(u16, String), String> {
        let url = self.url(path);
        let auth = format!("Bearer {}", self.token);
        let resp = if post {
            self.agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty()
        } else {
            self.agent.get(&url).header("Authorization", &auth).call()
        };
        let mut resp = resp.map_err(|e| format!("{url}: {e} (is the engine running?)"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{url}: {e}"))?;
        Ok((status, body))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let url = self.url(path);
        let (status, body) = self.send(false, path)?;
        if status != 200 {
            return Err(format!("{url}: HTTP {status}: {}", body.trim()));
        }
        serde_json::from_str(&body).map_err(|e| format!("{url}: unexpected answer: {e}"))
    }
}

fn fetch<T: DeserializeOwned>(config: &Path, path: &str) -> Result<T, String> {
    Api::connect(config)?.get(path)
}

/// Prints rows as an aligned table.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                format!("{c:<w$}")
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(header.iter().map(|h| h.to_string()).collect()));
    for r in rows {
        println!("{}", line(r));
    }
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.0}s")).unwrap_or_else(|| "-".into())
}

fn run<T: DeserializeOwned>(config: &Path, path: &str, print: impl FnOnce(T)) -> ExitCode {
    match fetch::<T>(config, path) {
        Ok(v) => {
            print(v);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("permanence: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `permanence queues`.
pub fn queues(config: &Path) -> ExitCode {
    run(config, "/api/queues", |qs: Vec<QueueView>| {
        table(
            &[
                "PRACTICE", "NAME", "OPEN", "WAITING", "RINGING", "OLDEST", "EST.WAIT", "AGENTS",
            ],
            qs.into_iter()
                .map(|q| {
                    vec![
                        q.practice,
                        q.name,
                        if q.open { "yes" } else { "no" }.into(),
                        q.waiting.to_string(),
                        q.ringing.to_string(),
                        secs(q.oldest_wait_s),
                        secs(q.estimated_wait_s),
                        format!("{}/{}", q.agents_dispatchable, q.agents_staffed),
                    ]
                })
                .collect(),
        )
    })
}

/// `permanence agents`.
pub fn agents(config: &Path) -> ExitCode {
    run(config, "/api/agents", |ags: Vec<AgentView>| {
        table(
            &[
                "AGENT", "NAME", "STATE", "REASON", "SHIFT", "PHONE", "CONTACTS", "STRIKES",
            ],
            ags.into_iter()
                .map(|a| {
                    vec![
                        a.agent,
                        a.display_name,
                        a.state,
                        a.pause_reason.unwrap_or_else(|| "-".into()),
                        if a.in_shift { "in" } else { "out" }.into(),
                        if a.reachable {
                            "reachable"
                        } else {
                            "unreachable"
                        }
                        .into(),
                        a.contacts.to_string(),
                        a.strikes.to_string(),
                    ]
                })
                .collect(),
        )
    })
}

/// `permanence calls`.
pub fn calls(config: &Path) -> ExitCode {
    run(config, "/api/calls", |cs: Vec<CallView>| {
        table(
            &[
                "CALL", "PRACTICE", "CALLER", "PHASE", "AGENT", "AGE", "WAIT", "POS",
            ],
            cs.into_iter()
                .map(|c| {
                    vec![
                        c.call_id,
                        c.practice,
                        c.caller,
                        c.phase,
                        c.agent.unwrap_or_else(|| "-".into()),
                        secs(Some(c.age_s)),
                        secs(c.wait_s),
                        c.position
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect(),
        )
    })
}

/// `permanence audit`: the latest entries of the audit log (admin role).
pub fn audit(config: &Path, limit: usize) -> ExitCode {
    run(
        config,
        &format!("/api/audit?limit={limit}"),
        |es: Vec<AuditView>| {
            table(
                &[
                    "AT", "ACTOR", "ROLE", "ACTION", "TARGET", "SOURCE", "OUTCOME", "DETAIL",
                ],
                es.into_iter()
                    .map(|e| {
                        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                        vec![
                            e.at,
                            e.actor,
                            dash(e.role),
                            e.action,
                            dash(e.target),
                            dash(e.source),
                            e.outcome,
                            dash(e.detail),
                        ]
                    })
                    .collect(),
            )
        },
    )
}

/// A path segment with everything but unreserved characters
/// percent-encoded.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The deadline as a wall-clock time in the practice's time zone (its
/// `timezone`); as given (UTC) when the practice or the time is unknown.
fn deadline(cfg: &permanence_config::Config, c: &CallbackView) -> String {
    let local = c.deadline_at.parse().ok().and_then(|at| {
        cfg.practice(&c.practice)
            .map(|p| p.hours.local(at).format("%Y-%m-%d %H:%M").to_string())
    });
    local.unwrap_or_else(|| c.deadline_at.clone())
}

/// `permanence callbacks [--practice ID]`: the open callback requests (in
/// place order), then the latest closed ones. The number is in clear for
/// a supervisor's or an admin's token, masked for a viewer's.
pub fn callbacks(config: &Path, practice: Option<&str>) -> ExitCode {
    let result = Api::connect(config).and_then(|api| {
        let path = match practice {
            Some(p) => format!("/api/callbacks?practice={}", segment(p)),
            None => "/api/callbacks".to_string(),
        };
        let v: CallbacksView = api.get(&path)?;
        Ok((api, v))
    });
    let (api, v) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("permanence: {e}");
            return ExitCode::FAILURE;
        }
    };
    let row = |c: CallbackView, open: bool| {
        let when = deadline(&api.cfg, &c);
        // Whole minutes left, rounded down (negative: overdue).
        let left = if open {
            c.seconds_to_deadline.div_euclid(60).to_string()
        } else {
            "-".into()
        };
        vec![
            c.key,
            c.practice,
            c.number,
            c.status,
            c.attempts.to_string(),
            when,
            left,
            c.agent.unwrap_or_else(|| "-".into()),
        ]
    };
    let rows = v
        .open
        .into_iter()
        .map(|c| row(c, true))
        .chain(v.recent.into_iter().map(|c| row(c, false)))
        .collect();
    table(
        &[
            "KEY", "PRACTICE", "NUMBER", "STATUS", "ATTEMPTS", "DEADLINE", "MIN.LEFT", "AGENT",
        ],
        rows,
    );
    ExitCode::SUCCESS
}

/// `permanence callbacks cancel|handled KEY` (supervisor role): prints the
/// outcome, fails when the engine refuses.
pub fn callback_action(config: &Path, key: &str, handled: bool) -> ExitCode {
    let (action, done) = if handled {
        ("handled", "marked handled")
    } else {
        ("cancel", "cancelled")
    };
    let path = format!("/api/callbacks/{}/{action}", segment(key));
    let result = Api::connect(config).and_then(|api| api.send(true, &path));
    match result {
        Ok((200, _)) => {
            println!("callback request {key} {done}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let why = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| body.trim().to_string());
            eprintln!("permanence: callback request {key} not {done}: HTTP {status}: {why}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("permanence: {e}");
            ExitCode::FAILURE
        }
    }
}
