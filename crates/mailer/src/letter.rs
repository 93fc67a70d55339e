//! The e-mail the practice receives, in French: subject, plain-text body
//! and the name of the attached WAV. The MIME message itself is built by
//! the driver (lettre).

use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;

use crate::VoicemailMessage;

/// The e-mail's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// « Nouveau message vocal — Cabinet du Dr Martin ».
    pub subject: String,
    /// Plain text: who called, when, the triage choice, the duration.
    pub body: String,
    /// The attachment's file name (`message-vocal-20260303-1405.wav`, in
    /// the practice's time).
    pub attachment_name: String,
}

/// The letter for `m`. An unknown time zone falls back to Europe/Paris.
pub fn compose(m: &VoicemailMessage) -> Letter {
    let tz: Tz = m.timezone.parse().unwrap_or(chrono_tz::Europe::Paris);
    let local = m.recorded_at.with_timezone(&tz);
    let caller = m
        .caller
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or("numéro masqué");
    let triage = m.triage.as_deref().unwrap_or("aucun (pas de choix)");
    let body = format!(
        "Bonjour,\n\n\
         Un patient a laissé un message vocal pour {name}.\n\n\
         Numéro de l'appelant : {caller}\n\
         Reçu le : {when}\n\
         Choix du patient : {triage}\n\
         Durée du message : {duration}\n\n\
         L'enregistrement est joint à ce courriel (fichier WAV).\n\n\
         -- \n\
         Permanence, télésecrétariat médical.\n\
         Ce courriel contient des données de santé : ne le transférez pas \
         en dehors du cabinet.\n",
        name = m.practice_name,
        when = french_time(&local, &m.timezone),
        duration = french_duration(m.duration_secs),
    );
    Letter {
        subject: format!("Nouveau message vocal — {}", m.practice_name),
        body,
        attachment_name: format!("message-vocal-{}.wav", local.format("%Y%m%d-%H%M")),
    }
}

/// « mardi 3 mars 2026 à 14 h 05 (Europe/Paris) ».
fn french_time(t: &DateTime<Tz>, zone: &str) -> String {
    let day = permanence_calendar::french::weekday(t.weekday());
    let month = permanence_calendar::french::month(t.month0());
    format!(
        "{day} {} {month} {} à {} h {:02} ({zone})",
        t.day(),
        t.year(),
        t.hour(),
        t.minute()
    )
}

/// « 1 min 05 s », « 42 s ».
fn french_duration(secs: f64) -> String {
    let total = if secs.is_finite() && secs > 0.0 {
        secs.round() as u64
    } else {
        0
    };
    match (total / 60, total % 60) {
        (0, s) => format!("{s} s"),
        (m, s) => format!("{m} min {s:02} s"),
    }
}

/// Kept for the tests: a time in UTC.
#[cfg(test)]
pub(crate) fn at(s: &str) -> DateTime<chrono::Utc> {
    s.parse().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn message(caller: Option<&str>, triage: Option<&str>) -> VoicemailMessage {
        VoicemailMessage {
            call_id: "c1".into(),
            practice_id: "martin".into(),
            practice_name: "Cabinet du Dr Martin".into(),
            timezone: "Europe/Paris".into(),
            recipients: vec!["secretariat@cabinet-martin.fr".into()],
            wav: PathBuf::from("x.wav"),
            caller: caller.map(str::to_owned),
            recorded_at: at("2026-03-03T13:05:09Z"),
            duration_secs: 65.4,
            triage: triage.map(str::to_owned),
        }
    }

    #[test]
    fn the_letter_is_in_french_in_the_practices_time() {
        let l = compose(&message(Some("+33612345678"), Some("Urgence (touche 1)")));
        assert_eq!(l.subject, "Nouveau message vocal — Cabinet du Dr Martin");
        assert!(
            l.body.contains("Numéro de l'appelant : +33612345678"),
            "{}",
            l.body
        );
        // 13:05 UTC is 14:05 in Paris in March (winter time).
        assert!(
            l.body
                .contains("Reçu le : mardi 3 mars 2026 à 14 h 05 (Europe/Paris)"),
            "{}",
            l.body
        );
        assert!(l.body.contains("Choix du patient : Urgence (touche 1)"));
        assert!(l.body.contains("Durée du message : 1 min 05 s"));
        assert_eq!(l.attachment_name, "message-vocal-20260303-1405.wav");
    }

    #[test]
    fn summer_time_withheld_number_and_no_triage() {
        let mut m = message(None, None);
        m.recorded_at = at("2026-07-14T22:30:00Z");
        m.duration_secs = 7.0;
        let l = compose(&m);
        assert!(l.body.contains("Numéro de l'appelant : numéro masqué"));
        assert!(
            l.body.contains("mercredi 15 juillet 2026 à 0 h 30"),
            "{}",
            l.body
        );
        assert!(l.body.contains("Choix du patient : aucun"));
        assert!(l.body.contains("Durée du message : 7 s"));
    }
}
