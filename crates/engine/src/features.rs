//! Agent feature codes, dialled from the telesecretary's softphone after
//! digest authentication: the engine applies the change to the dispatcher,
//! answers, plays a short spoken confirmation, and hangs up.
//!
//! | dial | effect |
//! |---|---|
//! | `*21` | pause (reason `pause`); `*21*N`: pause with reason `pause-N` |
//! | `*22` | end of pause |
//! | `*31` | log in to the queues |
//! | `*32` | log out of the queues |
//!
//! The dispatcher keeps an agent's state independently of its
//! registration, so a pause survives a re-registration of the softphone.

use crate::context::FeatureContext;
use crate::reply;
use permanence_acd::{AgentId, Input};
use permanence_media::sdp::{build_answer, negotiate, LocalSession, SessionDescription};
use permanence_media::{Direction, Language, MediaEvent, Playlist, Prompts, RemoteMedia};
use rsipstack::dialog::dialog::DialogState;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::Transaction;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info};

/// A feature code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// Pause with a reason.
    Pause(String),
    /// End of pause.
    Unpause,
    /// Log in to the queues.
    Login,
    /// Log out of the queues.
    Logout,
}

impl Feature {
    /// The action's name in the audit log.
    pub fn audit_name(&self) -> &'static str {
        match self {
            Feature::Pause(_) => "agent.pause",
            Feature::Unpause => "agent.unpause",
            Feature::Login => "agent.login",
            Feature::Logout => "agent.logout",
        }
    }
}

/// Parses the dialled user part (`*21`, `*21*3`, `*22`, `*31`, `*32`).
pub fn parse(dialled: &str) -> Option<Feature> {
    let d = dialled.trim();
    // Softphones may escape `*` as `%2A`.
    let d = d.replace("%2A", "*").replace("%2a", "*");
    match d.as_str() {
        "*21" => Some(Feature::Pause("pause".into())),
        "*22" => Some(Feature::Unpause),
        "*31" => Some(Feature::Login),
        "*32" => Some(Feature::Logout),
        other => {
            let code = other.strip_prefix("*21*")?;
            (!code.is_empty() && code.len() <= 4 && code.bytes().all(|b| b.is_ascii_digit()))
                .then(|| Feature::Pause(format!("pause-{code}")))
        }
    }
}

/// Handles an authenticated agent's INVITE to `dialled`.
pub async fn agent_call(
    ctx: Arc<FeatureContext>,
    mut tx: Transaction,
    agent: String,
    dialled: String,
    source: std::net::SocketAddr,
) {
    let Some(feature) = parse(&dialled) else {
        info!(event = "agent.call", agent, dialled = %permanence_numbers::mask(&dialled), "call from an agent: no feature for this number");
        reply(&mut tx, StatusCode::NotFound, vec![]).await;
        return;
    };
    let id = AgentId::from(agent.as_str());
    let input = match &feature {
        Feature::Pause(reason) => Input::AgentPause {
            agent: id,
            reason: reason.clone(),
        },
        Feature::Unpause => Input::AgentUnpause { agent: id },
        Feature::Login => Input::AgentLogin { agent: id },
        Feature::Logout => Input::AgentLogout { agent: id },
    };
    let applied = ctx.dispatch.input_checked(input).await;
    let actor = format!("agent:{agent}");
    ctx.audit.write(crate::audit::Action {
        actor: &actor,
        role: Some("agent"),
        action: feature.audit_name(),
        target: Some(&agent),
        source: Some(format!("sip:{}", source.ip())),
        outcome: if applied.is_ok() {
            crate::audit::Outcome::Ok
        } else {
            crate::audit::Outcome::Failed
        },
        detail: applied.as_ref().err().cloned(),
    });
    info!(
        event = "agent.feature",
        agent,
        feature = ?feature,
        ok = applied.is_ok(),
        error = applied.as_ref().err().map(String::as_str).unwrap_or(""),
        "agent feature code"
    );
    let Ok(prompts) = Prompts::get(Language::Fr) else {
        reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
        return;
    };
    let prompt = match (&feature, applied.is_ok()) {
        (_, false) => prompts.feature_unknown.clone(),
        (Feature::Pause(_), true) => prompts.feature_paused.clone(),
        (Feature::Unpause, true) => prompts.feature_unpaused.clone(),
        (Feature::Login, true) => prompts.feature_login.clone(),
        (Feature::Logout, true) => prompts.feature_logout.clone(),
    };
    confirm(ctx, tx, prompt).await;
}

/// Answers, plays `prompt` once, hangs up.
async fn confirm(
    ctx: Arc<FeatureContext>,
    mut tx: Transaction,
    prompt: Arc<permanence_media::Prompt>,
) {
    let neg = std::str::from_utf8(&tx.original.body)
        .ok()
        .and_then(|s| SessionDescription::parse(s).ok())
        .and_then(|sd| negotiate(&sd).ok());
    let Some(neg) = neg else {
        // Nothing to play to: the change is applied, say so without media.
        reply(&mut tx, StatusCode::NotAcceptableHere, vec![]).await;
        return;
    };
    let remote = RemoteMedia::from(&neg).with_signalling(crate::signalling_ip(&tx));
    let Ok((leg, mut events)) = ctx.media.engine.open_leg() else {
        reply(&mut tx, StatusCode::ServiceUnavailable, vec![]).await;
        return;
    };
    let mut session = LocalSession::new(ctx.media.advertise);
    let sdp = build_answer(
        &mut session,
        leg.port(),
        &neg,
        Direction::SendRecv,
        &leg.srtp_key(),
    );
    let (dialog, mut state_rx, task) = match ctx.sip.server_dialog(tx) {
        Ok(sd) => (sd.dialog, sd.states, sd.stop),
        Err(boxed) => {
            let (mut tx, _) = *boxed;
            reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
            leg.close().await;
            return;
        }
    };
    let id = dialog.id();
    let answered = leg.set_remote(remote).is_ok()
        && dialog
            .accept(
                Some(vec![Header::ContentType("application/sdp".into())]),
                Some(sdp.into_bytes()),
            )
            .is_ok()
        && leg.play(Playlist::single(prompt)).is_ok();
    let mut hung_up = false;
    if answered {
        let wait = async {
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Some(MediaEvent::PlaybackFinished) | None => return,
                        _ => {}
                    },
                    st = state_rx.recv() => match st {
                        Some(DialogState::Terminated(_, _)) | None => { hung_up = true; return; }
                        _ => {}
                    },
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(15), wait).await;
    }
    if answered && !hung_up {
        if let Err(e) = dialog.bye().await {
            debug!(error = %e, "BYE after feature code failed");
        }
    }
    leg.close().await;
    ctx.sip.dialogs.remove_dialog(&id);
    task.stop();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(parse("*21"), Some(Feature::Pause("pause".into())));
        assert_eq!(parse("*21*3"), Some(Feature::Pause("pause-3".into())));
        assert_eq!(parse("%2A22"), Some(Feature::Unpause));
        assert_eq!(parse("*31"), Some(Feature::Login));
        assert_eq!(parse("*32"), Some(Feature::Logout));
        assert_eq!(parse("*21*"), None);
        assert_eq!(parse("*21*abc"), None);
        assert_eq!(parse("+33450000001"), None);
        assert_eq!(parse(""), None);
    }
}
