//! `permanence queues|agents|calls|audit`: tables from the running engine's
//! admin API (address read from the configuration file; the token from
//! `PERMANENCE_TOKEN`, else the configuration's shared `http.admin_token`).

use permanence_http::{AgentView, AuditView, CallView, QueueView};
use serde::de::DeserializeOwned;
use std::path::Path;
use std::process::ExitCode;

fn fetch<T: DeserializeOwned>(config: &Path, path: &str) -> Result<T, String> {
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
    let url = format!("http://{}{}", cfg.http.listen, path);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .map_err(|e| format!("{url}: {e} (is the engine running?)"))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    if status != 200 {
        return Err(format!("{url}: HTTP {status}: {}", body.trim()));
    }
    serde_json::from_str(&body).map_err(|e| format!("{url}: unexpected answer: {e}"))
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
