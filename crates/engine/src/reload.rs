//! Reloading the configuration and dialplans (SIGHUP, `POST /api/reload`):
//! everything is validated before anything changes.

use crate::acd_map;
use crate::media::{self, PracticePrompts};
use crate::startup::{gate_settings, registrar_settings, stream_settings};
use crate::switch::Switch;
use permanence_config::Config;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::{info, warn};

/// Reloads the configuration file and dialplans: everything is validated
/// first (config, prompts, dispatcher); if anything is wrong the running
/// configuration stays and the errors are returned. Calls in progress and
/// waiting callers keep their place. Listening addresses and the RTP range
/// need a restart (a change is reported, not applied).
pub async fn reload(switch: &Arc<Switch>) -> Result<String, String> {
    let _guard = switch.reload_lock.lock().await;
    let (cfg, prompts) = match load(switch).await {
        Ok(x) => x,
        Err(errors) => {
            switch.metrics.config_reload(false);
            warn!(
                event = "config.reload_failed",
                errors = errors.len(),
                "configuration reload refused: the running configuration stays"
            );
            for e in &errors {
                warn!(event = "config.error", error = %e, "configuration error");
            }
            return Err(errors.join("\n"));
        }
    };
    let old = switch.config();
    let restart = needs_restart(&old, &cfg);
    reconfigure_dispatcher(switch, &old, &cfg).await?;
    switch.media.set_prompts(prompts);
    switch.registrations.set_settings(registrar_settings(&cfg));
    switch.door.set_settings(gate_settings(&cfg.sip.limits));
    switch
        .streams
        .set_settings(stream_settings(&cfg.sip.limits));
    reload_certificate(switch, &cfg);
    announce_new_agents(switch, &old, &cfg);
    let summary = format!(
        "{} practices, {} agents, {} pools, {} trunks{}",
        cfg.practices().len(),
        cfg.agents().len(),
        cfg.pools().len(),
        cfg.trunks().len(),
        if restart.is_empty() {
            String::new()
        } else {
            format!("; needs a restart to apply: {}", restart.join(", "))
        }
    );
    switch.config.store(Arc::new(cfg));
    switch.metrics.config_reload(true);
    info!(event = "config.reloaded", summary, "configuration reloaded");
    Ok(summary)
}

/// Re-reads the TLS certificate (renewed on disk); on error the current
/// one stays and the error is logged.
fn reload_certificate(switch: &Switch, cfg: &Config) {
    let Some(tls) = &switch.tls else { return };
    match tls.reload(&cfg.sip.tls) {
        Ok(()) => info!(
            event = "tls.reloaded",
            cert = %cfg.sip.tls.cert.display(),
            "TLS certificate reloaded"
        ),
        Err(e) => warn!(
            event = "tls.reload_failed",
            error = %e,
            "TLS certificate not reloaded: the current one stays"
        ),
    }
}

/// Reads and validates the files and their prompts, off the runtime.
async fn load(switch: &Switch) -> Result<(Config, HashMap<String, PracticePrompts>), Vec<String>> {
    let path = switch.config_path.clone();
    tokio::task::spawn_blocking(move || {
        let cfg = permanence_config::load(&path)
            .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        let prompts = media::load_prompts(&cfg)?;
        Ok((cfg, prompts))
    })
    .await
    .map_err(|e| vec![e.to_string()])?
}

/// Settings a reload cannot apply.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut restart = Vec::new();
    if old.sip.listen_udp != new.sip.listen_udp
        || old.sip.listen_tcp != new.sip.listen_tcp
        || old.sip.listen_tls != new.sip.listen_tls
        || old.sip.listen_ws != new.sip.listen_ws
        || old.sip.listen_wss != new.sip.listen_wss
    {
        restart.push("sip listen addresses");
    }
    if old.rtp != new.rtp {
        restart.push("rtp");
    }
    if old.http.listen != new.http.listen {
        restart.push("http.listen");
    }
    if old.http.console_session != new.http.console_session {
        restart.push("http.console_session_minutes");
    }
    if old.records.path != new.records.path {
        restart.push("records.path");
    }
    restart
}

/// Gives the dispatcher the new configuration. Metrics take the new
/// practice set first (the dispatcher task's recorder follows it when the
/// reconfiguration succeeds) and get the old one back if it fails.
async fn reconfigure_dispatcher(switch: &Switch, old: &Config, new: &Config) -> Result<(), String> {
    let ids = |c: &Config| -> Vec<String> { c.practices().iter().map(|p| p.id.clone()).collect() };
    let set = |ids: &[String]| {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        switch.metrics.practices(&refs)
    };
    if let Err(e) = set(&ids(new)) {
        warn!(error = %e, "metrics: practices not updated");
    }
    if let Err(e) = switch.dispatch.reconfigure(acd_map::acd_config(new)).await {
        let _ = set(&ids(old));
        switch.metrics.config_reload(false);
        warn!(event = "config.reload_failed", error = %e, "dispatcher refused the new configuration");
        return Err(format!("dispatcher: {e}"));
    }
    Ok(())
}

/// Agents added by the reload are unreachable until they register.
fn announce_new_agents(switch: &Switch, old: &Config, new: &Config) {
    for a in new.agents() {
        if old.agent(&a.username).is_none() {
            let reachable = !switch.registrations.contacts(&a.username).is_empty();
            switch
                .dispatch
                .input(permanence_acd::Input::AgentReachability {
                    agent: a.username.as_str().into(),
                    reachable,
                });
        }
    }
}
