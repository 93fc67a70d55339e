//! From the validated configuration to the dispatcher's configuration.

use permanence_acd::{AcdConfig, AcdSettings, AgentProfile, PoolDef, PracticePolicy};
use permanence_config::Config;

/// The dispatcher configuration for `cfg`. Every agent starts logged in
/// (queue login is an agent control, see feature codes) and unreachable
/// until its softphone registers.
pub fn acd_config(cfg: &Config) -> AcdConfig {
    let d = &cfg.dispatcher;
    let settings = AcdSettings {
        strategy: d.strategy,
        ring_timeout: d.default_ring_timeout,
        busy_backoff: d.busy_backoff,
        rona_backoff: d.no_answer_backoff,
        max_no_answer_strikes: d.max_no_answer_strikes,
        wrap_up: d.default_wrap_up,
        default_handle: d.default_handle,
        ..AcdSettings::default()
    };
    let agents = cfg
        .agents()
        .iter()
        .map(|a| {
            let mut p = AgentProfile::new(a.username.as_str());
            p.skills = a.skills.clone();
            p.languages = a.languages.clone();
            p.pools = cfg
                .pools()
                .iter()
                .filter(|pool| pool.has(&a.username))
                .map(|pool| pool.id.as_str().into())
                .collect();
            p.practices = cfg
                .practices()
                .iter()
                .filter(|pr| pr.routing.dedicated.contains(&a.username))
                .map(|pr| pr.id.as_str().into())
                .collect();
            p.shift = a.has_shift().then(|| a.shift.clone());
            p.wrap_up = a.wrap_up;
            p.logged_in = true;
            p
        })
        .collect();
    let pools = cfg
        .pools()
        .iter()
        .map(|p| PoolDef {
            id: p.id.as_str().into(),
            members: p.agents.iter().map(|a| a.as_str().into()).collect(),
        })
        .collect();
    let practices = cfg
        .practices()
        .iter()
        .map(|pr| {
            let r = &pr.routing;
            let mut p = PracticePolicy::new(pr.id.as_str());
            p.hours = Some(pr.hours.clone());
            p.dedicated_agents = r.dedicated.iter().map(|a| a.as_str().into()).collect();
            p.steps = r
                .steps
                .iter()
                .map(|s| {
                    let mut step = s.step.clone();
                    if step.select.skill.is_none() {
                        step.select.min_level = 0;
                    }
                    step
                })
                .collect();
            p.priority = r.priority;
            p.max_wait = Some(r.max_wait);
            p.overflow = r.overflow.clone();
            p.wrap_up = Some(r.wrap_up);
            p.ring_timeout = Some(r.ring_timeout);
            p.specialty = Some(pr.specialty.clone());
            p
        })
        .collect();
    AcdConfig {
        settings,
        agents,
        pools,
        practices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_configuration_maps_to_a_valid_dispatcher() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/permanence.toml");
        let cfg = permanence_config::load(&path).expect("demo config");
        let acd = acd_config(&cfg);
        assert_eq!(acd.agents.len(), cfg.agents().len());
        assert_eq!(acd.practices.len(), cfg.practices().len());
        let martin = acd
            .practices
            .iter()
            .find(|p| p.id.as_str() == "martin")
            .expect("martin");
        assert!(martin.steps[0].select.dedicated);
        assert!(permanence_acd::Dispatcher::new(acd).is_ok());
    }
}
