//! The dashboard and the alert rules in `deploy/` only name metrics the
//! code exports.
//!
//! Every PromQL expression of the Grafana dashboard (panel targets and
//! template variable queries) and of the Prometheus alert rules is scanned
//! for `permanence_*` identifiers; `_bucket`/`_sum`/`_count` of histogram
//! families map back to the family; each must be a family registered by a
//! freshly built [`Metrics`] (after `practices(&["x"])`). `le="…"` bucket
//! bounds must be buckets of the histograms.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use permanence_metrics::{
    MetricKind, Metrics, BUCKETS, CALLBACK_MARGIN_NONE_PENDING, DEFAULT_SHORT_ABANDON,
};
use serde::Deserialize;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

fn read(path: &str) -> String {
    let p = deploy(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The families of a fresh `Metrics`, by name.
fn exported() -> BTreeMap<String, MetricKind> {
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    m.practices(&["x"]).expect("practices");
    let families: BTreeMap<String, MetricKind> =
        m.families().into_iter().map(|f| (f.name, f.kind)).collect();
    // Every family the registry gathers is listed.
    for mf in m.registry().gather() {
        assert!(
            families.contains_key(mf.name()),
            "{} gathered but not listed",
            mf.name()
        );
    }
    families
}

/// `permanence_*` identifiers of an expression.
fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = expr[i..].find("permanence_") {
        let start = i + off;
        let mut end = start + "permanence_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        let boundary_before = start == 0 || !is_ident(bytes[start - 1]);
        let boundary_after = end == bytes.len() || !is_ident(bytes[end]);
        if boundary_before && boundary_after {
            out.push(expr[start..end].to_string());
        } else if boundary_before {
            // `permanence_` followed by digits or capitals: keep it whole so
            // the check reports it.
            let mut e = end;
            while e < bytes.len() && is_ident(bytes[e]) {
                e += 1;
            }
            out.push(expr[start..e].to_string());
        }
        i = end.max(start + 1);
    }
    out
}

/// `le="…"` values of an expression.
fn le_values(expr: &str) -> Vec<String> {
    expr.match_indices("le=\"")
        .filter_map(|(i, m)| {
            let rest = &expr[i + m.len()..];
            rest.find('"').map(|j| rest[..j].to_string())
        })
        .collect()
}

/// The family a referenced name belongs to, if exported.
fn family_of(name: &str, families: &BTreeMap<String, MetricKind>) -> Option<String> {
    if families.contains_key(name) {
        return Some(name.to_string());
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        (families.get(base) == Some(&MetricKind::Histogram)).then(|| base.to_string())
    })
}

/// Checks every expression; returns the families they use.
fn check(source: &str, exprs: &[(String, String)]) -> BTreeSet<String> {
    let families = exported();
    let buckets: BTreeSet<String> = BUCKETS
        .iter()
        .map(|b| b.to_string())
        .chain(["+Inf".to_string()])
        .collect();
    let mut used = BTreeSet::new();
    let mut errors = Vec::new();
    for (place, expr) in exprs {
        for name in metric_names(expr) {
            match family_of(&name, &families) {
                Some(f) => {
                    used.insert(f);
                }
                None => errors.push(format!(
                    "{source}: {place}: `{name}` is not exported by permanence-metrics"
                )),
            }
        }
        for le in le_values(expr) {
            if !buckets.contains(&le) {
                errors.push(format!("{source}: {place}: le=\"{le}\" is not a bucket"));
            }
        }
    }
    assert!(errors.is_empty(), "\n{}", errors.join("\n"));
    used
}

// ------------------------------------------------------------- dashboard

/// Every `expr` of every panel target (rows included) and every template
/// variable query, with where it was found.
fn dashboard_exprs(d: &serde_json::Value) -> Vec<(String, String)> {
    fn panels(list: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("panel {title:?}"), e.to_string()));
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&d["panels"], &mut out);
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("?");
        for q in [&v["definition"], &v["query"], &v["query"]["query"]] {
            if let Some(q) = q.as_str() {
                out.push((format!("variable {name:?}"), q.to_string()));
            }
        }
    }
    out
}

#[test]
fn dashboard_parses_and_names_only_exported_metrics() {
    let d: serde_json::Value =
        serde_json::from_str(&read("grafana/permanence.json")).expect("dashboard JSON");
    assert_eq!(d["title"], "Permanence");
    let exprs = dashboard_exprs(&d);
    assert!(exprs.len() > 40, "only {} expressions found", exprs.len());
    // The datasource and practice variables.
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(vars.contains(&"datasource") && vars.contains(&"practice"));
    assert!(exprs
        .iter()
        .any(|(_, e)| e.contains("label_values(permanence_calls_offered_total, practice)")));
    // Every panel with targets uses the datasource variable.
    fn check_ds(list: &serde_json::Value) {
        for p in list.as_array().into_iter().flatten() {
            if p["targets"].as_array().is_some_and(|t| !t.is_empty()) {
                assert_eq!(
                    p["datasource"]["uid"], "${datasource}",
                    "panel {}",
                    p["title"]
                );
            }
            check_ds(&p["panels"]);
        }
    }
    check_ds(&d["panels"]);
    let used = check("grafana/permanence.json", &exprs);
    // The panels the operators asked for have their metrics.
    for f in [
        "permanence_calls_offered_total",
        "permanence_calls_answered_total",
        "permanence_calls_abandoned_total",
        "permanence_calls_overflowed_total",
        "permanence_calls_failed_total",
        "permanence_calls_closed_total",
        "permanence_wait_seconds",
        "permanence_queue_waiting",
        "permanence_queue_oldest_wait_seconds",
        "permanence_queue_estimated_wait_seconds",
        "permanence_agents",
        "permanence_agents_eligible",
        "permanence_offers_total",
        "permanence_sip_requests_total",
        "permanence_sip_responses_total",
        "permanence_rtp_packets_total",
        "permanence_rtp_lost_packets_total",
        "permanence_records_dropped_total",
        "permanence_records_healthy",
        "permanence_records_write_failures_total",
        "permanence_records_backlog",
        "permanence_outbound_calls_total",
        "permanence_outbound_refused_total",
        "permanence_outbound_calls_active",
        "permanence_outbound_talk_seconds_total",
        "permanence_callbacks_requested_total",
        "permanence_callback_attempts_total",
        "permanence_callbacks_completed_total",
        "permanence_callbacks_failed_total",
        "permanence_callbacks_handled_total",
        "permanence_callbacks_pending",
        "permanence_callbacks_oldest_pending_age_seconds",
        "permanence_callbacks_deadline_margin_seconds",
    ] {
        assert!(used.contains(f), "no dashboard panel uses {f}");
    }
    // Graphs of the deadline margin leave out the practices with nothing
    // pending (the sentinel would flatten every other line).
    assert_eq!(CALLBACK_MARGIN_NONE_PENDING, 1_000_000_000);
    let margin: Vec<&String> = exprs
        .iter()
        .filter(|(_, e)| e.contains("permanence_callbacks_deadline_margin_seconds"))
        .map(|(_, e)| e)
        .collect();
    assert!(!margin.is_empty());
    for e in margin {
        assert!(e.contains("< 1e9"), "the sentinel is not filtered out: {e}");
    }
    let panels = d["panels"].as_array().expect("panels");
    assert!(
        panels
            .iter()
            .any(|p| p["type"] == "row" && p["title"] == "Appels sortants / Outbound"),
        "outbound row"
    );
    assert!(
        panels
            .iter()
            .any(|p| p["type"] == "row" && p["title"] == "Rappels / Callbacks"),
        "callbacks row"
    );
    // The deadline margin graph draws the 10-minute alert threshold.
    let margin_panel = panels
        .iter()
        .find(|p| {
            p["targets"].as_array().into_iter().flatten().any(|t| {
                t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("permanence_callbacks_deadline_margin_seconds"))
            })
        })
        .expect("deadline margin panel");
    let defaults = &margin_panel["fieldConfig"]["defaults"];
    assert_eq!(defaults["custom"]["thresholdsStyle"]["mode"], "line");
    assert!(
        defaults["thresholds"]["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["value"] == 600),
        "threshold at 10 minutes"
    );
    // Panel ids are unique.
    let mut ids = BTreeSet::new();
    for p in panels {
        let id = p["id"].as_i64().expect("panel id");
        assert!(ids.insert(id), "duplicate panel id {id}");
    }
    // Panels do not overlap and fit the 24-column grid.
    let rect = |p: &serde_json::Value| {
        let g = &p["gridPos"];
        let n = |k: &str| {
            g[k].as_i64()
                .unwrap_or_else(|| panic!("{}: gridPos.{k}", p["title"]))
        };
        (n("x"), n("y"), n("w"), n("h"))
    };
    for (i, a) in panels.iter().enumerate() {
        let (ax, ay, aw, ah) = rect(a);
        assert!(
            ax >= 0 && aw > 0 && ax + aw <= 24 && ah > 0,
            "{}: gridPos",
            a["title"]
        );
        for b in &panels[i + 1..] {
            let (bx, by, bw, bh) = rect(b);
            let overlap = ax < bx + bw && bx < ax + aw && ay < by + bh && by < ay + ah;
            assert!(!overlap, "panels {} and {} overlap", a["title"], b["title"]);
        }
    }
}

// ---------------------------------------------------------------- alerts

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[test]
fn alert_rules_parse_and_name_only_exported_metrics() {
    let file: RuleFile =
        serde_norway::from_str(&read("prometheus/alerts.yml")).expect("alert rules YAML");
    let mut exprs = Vec::new();
    let mut alerts = BTreeSet::new();
    for g in &file.groups {
        for r in &g.rules {
            let name = r
                .alert
                .clone()
                .or(r.record.clone())
                .expect("alert or record");
            if r.alert.is_some() {
                assert!(
                    r.annotations.contains_key("summary")
                        && r.annotations.contains_key("description"),
                    "{name}: summary and description annotations"
                );
                assert!(r.labels.contains_key("severity"), "{name}: severity label");
                // Per-practice alerts name the practice.
                if r.expr.contains("by (practice)") {
                    for a in ["summary", "description"] {
                        assert!(
                            r.annotations[a].contains("{{ $labels.practice }}"),
                            "{name}: {a} names the practice"
                        );
                    }
                }
            }
            alerts.insert(name.clone());
            exprs.push((format!("group {:?} rule {name}", g.name), r.expr.clone()));
        }
    }
    for a in [
        "PermanencePickupRateLow",
        "PermanenceOldestWaitHigh",
        "PermanenceNoAgentForOpenPractice",
        "PermanenceSipServerErrors",
        "PermanenceSipParseErrors",
        "PermanenceRtpLoss",
        "PermanenceCallRecordsDropped",
        "PermanenceRecordsStoreDegraded",
        "PermanenceOutboundRefusedBurst",
        "PermanenceCallbackDeadlineNear",
        "PermanenceCallbackDeadlineMissed",
    ] {
        assert!(alerts.contains(a), "missing alert {a}");
    }
    // The callback deadline alerts watch the margin, whose sentinel (no
    // request pending) is far above both thresholds.
    let rule = |name: &str| {
        file.groups
            .iter()
            .flat_map(|g| &g.rules)
            .find(|r| r.alert.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name}"))
    };
    for (name, threshold, severity) in [
        ("PermanenceCallbackDeadlineNear", 600, "warning"),
        ("PermanenceCallbackDeadlineMissed", 0, "page"),
    ] {
        let r = rule(name);
        assert!(
            r.expr
                .contains("permanence_callbacks_deadline_margin_seconds")
                && r.expr.trim_end().ends_with(&format!("< {threshold}")),
            "{name}: {}",
            r.expr
        );
        assert_eq!(r.labels["severity"], severity, "{name}");
        assert!(CALLBACK_MARGIN_NONE_PENDING > threshold, "{name}");
    }
    // The toll-fraud alert watches the allow-list refusals only.
    let burst = file
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .find(|r| r.alert.as_deref() == Some("PermanenceOutboundRefusedBurst"))
        .expect("PermanenceOutboundRefusedBurst");
    assert!(burst
        .expr
        .contains("permanence_outbound_refused_total{reason=\"destination\"}"));
    assert!(burst.annotations["description"].contains("outbound.refused"));
    check("prometheus/alerts.yml", &exprs);
}

#[test]
fn prometheus_config_scrapes_permanence_and_loads_the_rules() {
    let cfg: serde_norway::Value =
        serde_norway::from_str(&read("prometheus/prometheus.yml")).expect("prometheus.yml");
    let rule_files: Vec<&str> = cfg["rule_files"]
        .as_sequence()
        .expect("rule_files")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(rule_files.contains(&"alerts.yml"));
    let jobs = cfg["scrape_configs"].as_sequence().expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("permanence"))
        .expect("permanence job");
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    let targets = &job["static_configs"][0]["targets"];
    assert_eq!(targets[0].as_str(), Some("127.0.0.1:8080"));
}

// ------------------------------------------------------- the checker itself

#[test]
fn the_checker_rejects_unknown_names_and_buckets() {
    let bad = vec![(
        "typo".to_string(),
        "sum(rate(permanence_calls_answerd_total[5m]))".to_string(),
    )];
    assert!(std::panic::catch_unwind(|| check("test", &bad)).is_err());
    // A non-histogram family has no _count series.
    let bad = vec![(
        "suffix".to_string(),
        "permanence_calls_offered_total_count".to_string(),
    )];
    assert!(std::panic::catch_unwind(|| check("test", &bad)).is_err());
    let bad = vec![(
        "bucket".to_string(),
        "permanence_wait_seconds_bucket{le=\"25\"}".to_string(),
    )];
    assert!(std::panic::catch_unwind(|| check("test", &bad)).is_err());
    let good = vec![(
        "ok".to_string(),
        "sum(rate(permanence_wait_seconds_bucket{le=\"20\"}[5m])) / sum(rate(permanence_wait_seconds_count[5m])) and up{job=\"permanence\"}".to_string(),
    )];
    assert_eq!(
        check("test", &good).into_iter().collect::<Vec<_>>(),
        ["permanence_wait_seconds"]
    );
    assert_eq!(
        metric_names("x_permanence_foo + permanence_bar_total{a=\"permanence_baz\"}"),
        ["permanence_bar_total", "permanence_baz"]
    );
}

// ------------------------------------------------------------- promtool

/// Runs `promtool` on the Prometheus files when it is installed (Debian:
/// `apt-get install prometheus`): config and rule syntax, and the alert
/// unit tests of `deploy/prometheus/alerts_test.yml`. Without promtool
/// this test only says so.
#[test]
fn promtool_checks_when_available() {
    let Ok(out) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        eprintln!("promtool not installed: deploy/prometheus not checked by promtool");
        return;
    };
    assert!(out.status.success());
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(deploy("prometheus"))
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
