//! The HTML rendering: one self-contained page in French (inline CSS, no
//! script, no external resource), printable on A4.

use std::fmt::Write;

use crate::{Bucket, Report};

const STYLE: &str = "body{font-family:system-ui,'Segoe UI',Arial,sans-serif;color:#1d2733;\
margin:2rem auto;max-width:60rem;padding:0 1rem;line-height:1.4}\
h1{font-size:1.5rem;margin:0}h2{font-size:1.1rem;border-bottom:2px solid #2b5d8a;\
padding-bottom:.2rem;margin-top:1.6rem}.sub{color:#5a6673;margin:.2rem 0 1rem}\
.kpis{display:flex;flex-wrap:wrap;gap:.6rem}.kpi{border:1px solid #c9d3dd;border-radius:6px;\
padding:.5rem .8rem;min-width:9rem}.kpi b{display:block;font-size:1.4rem}\
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #c9d3dd;\
padding:.2rem .5rem;text-align:right}th{background:#eef2f6}td.l,th.l{text-align:left}\
table.heat td,table.heat th{padding:.15rem .2rem;font-size:.75rem;min-width:1.3rem;\
text-align:center}.note{color:#5a6673;font-size:.85rem}\
@media print{body{margin:0;max-width:none}h2{break-after:avoid}table{break-inside:avoid}\
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}\
@page{size:A4;margin:1.5cm}";

/// `s` with the HTML special characters escaped.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A ratio as a French percentage (« 87,5 % »), « — » when unknown.
fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1} %", v * 100.0).replace('.', ","))
        .unwrap_or_else(|| "—".into())
}

/// Seconds in French (« 12,3 s »), « — » when unknown.
fn secs(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1} s").replace('.', ","))
        .unwrap_or_else(|| "—".into())
}

/// Minutes in French (« 42,5 min »).
fn mins(v: f64) -> String {
    format!("{v:.1} min").replace('.', ",")
}

/// French names of abandon phases and overflow targets.
fn name_fr(key: &str) -> &str {
    match key {
        "greeting" => "pendant l'accueil",
        "triage" => "au menu de tri",
        "route" => "pendant un transfert direct",
        "before_queue" => "avant la file (accueil ou menu)",
        "queue" => "en file d'attente",
        "ringing" => "pendant la sonnerie d'une secrétaire",
        "callback_prompt" => "au menu de rappel",
        "voicemail" => "messagerie vocale",
        "callback" => "rappel proposé (débordement)",
        "hangup" => "message et raccroché",
        "callback_request" => "rappel demandé par l'appelant",
        "agent" => "appels des secrétaires",
        "transfer" => "transferts",
        other => other,
    }
}

/// `report` as a self-contained HTML page.
pub(crate) fn render(r: &Report) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let title = format!(
        "Rapport d'activité — {} — {}",
        escape(&r.practice_name),
        escape(&r.period_label)
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n\
         <h1>{}</h1><p class=\"sub\">Rapport d'activité — {} (fuseau {}). \
         Établi à partir des enregistrements d'appels.</p>\n",
        escape(&r.practice_name),
        escape(&r.period_label),
        escape(&r.timezone)
    );
    summary(&mut h, r);
    calls(&mut h, r);
    services(&mut h, r);
    hours(&mut h, r);
    heat_map(&mut h, r);
    h.push_str(
        "<p class=\"note\">Aucun numéro d'appelant ne figure dans ce rapport. \
         Un appel est « présenté » dès que l'accueil du cabinet a été joué ; \
         les appels hors horaires d'ouverture sont comptés à part.</p>\n</body></html>\n",
    );
    h
}

fn kpi(h: &mut String, label: &str, value: &str, id: &str) {
    let _ = write!(
        h,
        "<div class=\"kpi\"><span>{label}</span><b id=\"{id}\">{value}</b></div>"
    );
}

fn summary(h: &mut String, r: &Report) {
    let (c, w) = (&r.calls, &r.wait);
    h.push_str("<h2>En bref</h2><div class=\"kpis\">");
    kpi(h, "Appels présentés", &c.offered.to_string(), "offered");
    kpi(h, "Appels décrochés", &c.answered.to_string(), "answered");
    kpi(
        h,
        "Appels abandonnés",
        &c.abandoned.to_string(),
        "abandoned",
    );
    kpi(h, "Taux de décroché", &pct(c.pickup_rate), "pickup");
    kpi(h, "Attente moyenne", &secs(w.average_secs), "wait-avg");
    kpi(h, "Attente (90 %)", &secs(w.p90_secs), "wait-p90");
    let sl = format!("Niveau de service ({} s)", w.service_level_threshold_secs);
    kpi(h, &sl, &pct(w.service_level), "service-level");
    kpi(h, "Minutes traitées", &mins(r.minutes.total), "minutes");
    let _ = writeln!(
        h,
        "</div><p class=\"note\">Attente : de l'entrée en file au décroché d'une \
         secrétaire, appels décrochés. Niveau de service : part des appels présentés \
         décrochés en {} s d'attente au plus ({} sur {}). 90 % des appels décrochés \
         ont attendu au plus l'attente « 90 % ».</p>",
        w.service_level_threshold_secs, w.answered_within_threshold, c.offered
    );
}

fn row(h: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = write!(
        h,
        "<tr><td class=\"l\">{}</td><td>{value}</td></tr>",
        escape(label)
    );
}

fn calls(h: &mut String, r: &Report) {
    let c = &r.calls;
    h.push_str("<h2>Appels reçus</h2><table><tbody>");
    row(h, "Appels présentés (accueil joué)", c.offered);
    row(h, "Décrochés", c.answered);
    row(h, "Abandonnés par l'appelant", c.abandoned);
    for (phase, n) in &c.abandoned_by_phase {
        row(h, &format!("— dont {}", name_fr(phase)), n);
    }
    for (target, n) in &c.overflowed {
        row(h, &format!("Débordés : {}", name_fr(target)), n);
    }
    row(h, "Échecs techniques", c.failed);
    row(h, "Hors horaires d'ouverture (non présentés)", c.closed);
    row(
        h,
        "Raccrochés avant l'accueil (non présentés)",
        c.unanswered,
    );
    row(h, "Refusés (non présentés)", c.rejected);
    if c.in_progress > 0 {
        row(h, "En cours ou interrompus", c.in_progress);
    }
    h.push_str("</tbody></table>\n");
}

fn services(h: &mut String, r: &Report) {
    let (cb, v, o, m) = (&r.callbacks, &r.voicemail, &r.outbound, &r.minutes);
    h.push_str("<h2>Rappels, messagerie et appels sortants</h2><table><tbody>");
    row(h, "Rappels demandés", cb.requested);
    row(
        h,
        "Rappels effectués dans le délai",
        cb.done_within_deadline,
    );
    row(h, "Rappels effectués hors délai", cb.done_late);
    row(h, "Rappels traités autrement (marqués traités)", cb.handled);
    row(h, "Rappels en échec", cb.failed);
    row(h, "Rappels annulés", cb.cancelled);
    row(h, "Rappels en attente", cb.open);
    row(h, "Appels dirigés vers la messagerie", v.calls);
    row(h, "Messages vocaux enregistrés", v.messages);
    row(h, "Appels sortants passés", o.placed);
    row(h, "— dont aboutis", o.answered);
    for (origin, n) in &o.by_origin {
        row(h, &format!("— dont {}", name_fr(origin)), n);
    }
    row(
        h,
        "Appels sortants refusés (contrôle anti-fraude)",
        o.refused,
    );
    row(h, "Minutes de conversation, appels reçus", mins(m.inbound));
    row(
        h,
        "Minutes de conversation, appels sortants",
        mins(m.outbound),
    );
    row(h, "Minutes traitées (total)", mins(m.total));
    h.push_str("</tbody></table>\n");
}

fn bucket_table(h: &mut String, head: &str, labels: &[String], buckets: &[Bucket]) {
    let _ = write!(
        h,
        "<table><thead><tr><th class=\"l\">{head}</th><th>présentés</th>\
         <th>décrochés</th><th>taux</th></tr></thead><tbody>"
    );
    for (label, b) in labels.iter().zip(buckets) {
        let rate = (b.offered > 0).then(|| b.answered as f64 / b.offered as f64);
        let _ = write!(
            h,
            "<tr><td class=\"l\">{label}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            b.offered,
            b.answered,
            pct(rate)
        );
    }
    h.push_str("</tbody></table>\n");
}

fn hours(h: &mut String, r: &Report) {
    h.push_str("<h2>Appels présentés par jour de la semaine</h2>");
    let days: Vec<String> = permanence_calendar::french::WEEKDAYS
        .iter()
        .map(|d| d.to_string())
        .collect();
    bucket_table(h, "jour", &days, &r.by_weekday);
    h.push_str("<h2>Appels présentés par heure</h2>");
    let (labels, buckets): (Vec<String>, Vec<Bucket>) = r
        .by_hour
        .iter()
        .enumerate()
        .filter(|(_, b)| b.offered > 0)
        .map(|(i, b)| (format!("{i:02} h – {:02} h", i + 1), b.clone()))
        .unzip();
    if labels.is_empty() {
        h.push_str("<p>Aucun appel présenté sur la période.</p>\n");
    } else {
        bucket_table(h, "heure", &labels, &buckets);
    }
}

/// Background of a heat-map cell: white to dark blue with the count.
fn shade(n: u64, max: u64) -> String {
    if n == 0 || max == 0 {
        return "background:#fff;color:#b0bac4".into();
    }
    let t = n as f64 / max as f64;
    let light = 95.0 - 60.0 * t;
    let ink = if light < 60.0 { "#fff" } else { "#1d2733" };
    format!("background:hsl(210,60%,{light:.0}%);color:{ink}")
}

fn heat_map(h: &mut String, r: &Report) {
    let max = r.heat_map.iter().flatten().copied().max().unwrap_or(0);
    h.push_str(
        "<h2>Carte de chaleur : appels présentés par jour et par heure</h2>\
         <table class=\"heat\" id=\"heat-map\"><thead><tr><th class=\"l\"></th>",
    );
    for hour in 0..24 {
        let _ = write!(h, "<th>{hour}</th>");
    }
    h.push_str("</tr></thead><tbody>");
    for (day, cells) in permanence_calendar::french::WEEKDAYS
        .iter()
        .zip(&r.heat_map)
    {
        let _ = write!(h, "<tr><th class=\"l\">{day}</th>");
        for n in cells {
            let text = if *n == 0 {
                String::new()
            } else {
                n.to_string()
            };
            let _ = write!(h, "<td style=\"{}\">{text}</td>", shade(*n, max));
        }
        h.push_str("</tr>");
    }
    let _ = writeln!(
        h,
        "</tbody></table><p class=\"note\">Heures locales ({}). Plus la case est \
         foncée, plus il y a eu d'appels (maximum : {max}).</p>",
        escape(&r.timezone)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_french_numbers() {
        assert_eq!(
            escape("<b>\"A&B\"</b>'"),
            "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt;&#39;"
        );
        assert_eq!(pct(Some(0.875)), "87,5 %");
        assert_eq!(pct(None), "—");
        assert_eq!(secs(Some(12.34)), "12,3 s");
        assert_eq!(mins(42.5), "42,5 min");
        assert_eq!(shade(0, 5), "background:#fff;color:#b0bac4");
        assert!(shade(5, 5).contains("35%"));
    }
}
