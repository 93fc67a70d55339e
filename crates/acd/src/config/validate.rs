//! Validation of an [`AcdConfig`]: every id is unique, every reference
//! resolves, every value is in range. [`crate::Dispatcher::new`] and
//! [`crate::Dispatcher::reconfigure`] refuse a configuration that fails it,
//! so the dispatcher never meets a dangling reference at run time.

use std::collections::HashSet;
use std::time::Duration;

use super::{AcdConfig, AcdSettings, AgentProfile, OverflowTarget, PracticePolicy, RoutingStep};
use crate::error::AcdError;

/// The ids declared by a configuration, for reference checks.
struct Declared<'a> {
    agents: HashSet<&'a str>,
    pools: HashSet<&'a str>,
    practices: HashSet<&'a str>,
}

impl AcdConfig {
    /// Checks the configuration and returns the first problem found:
    ///
    /// * settings in range (`aht_alpha` in `(0, 1]`, ring timeout and
    ///   strikes at least 1, `orphan_overflow` not a pool);
    /// * agent, pool and practice ids unique, skill levels in `1..=5`;
    /// * every pool member, agent pool/practice, dedicated agent, step pool
    ///   and overflow pool exists;
    /// * each practice has at least one routing step, steps in
    ///   non-decreasing `after_secs`, `min_level` at most 5 and only with a
    ///   skill, per-practice ring timeout and strikes at least 1.
    pub fn validate(&self) -> Result<(), AcdError> {
        validate_settings(&self.settings)?;
        let mut ids = Declared {
            agents: HashSet::new(),
            pools: HashSet::new(),
            practices: HashSet::new(),
        };
        for a in &self.agents {
            validate_agent(a, &mut ids.agents)?;
        }
        for p in &self.pools {
            if !ids.pools.insert(p.id.as_str()) {
                return Err(duplicate("pool", p.id.as_str()));
            }
            for m in &p.members {
                if !ids.agents.contains(m.as_str()) {
                    return Err(unknown(format!("pool {}", p.id), "agent", m.as_str()));
                }
            }
        }
        for p in &self.practices {
            if !ids.practices.insert(p.id.as_str()) {
                return Err(duplicate("practice", p.id.as_str()));
            }
        }
        for a in &self.agents {
            validate_agent_refs(a, &ids)?;
        }
        for p in &self.practices {
            validate_practice(p, &ids)?;
        }
        Ok(())
    }
}

fn duplicate(kind: &'static str, id: &str) -> AcdError {
    AcdError::DuplicateId {
        kind,
        id: id.to_string(),
    }
}

fn unknown(context: String, kind: &'static str, id: &str) -> AcdError {
    AcdError::UnknownReference {
        context,
        kind,
        id: id.to_string(),
    }
}

fn validate_settings(s: &AcdSettings) -> Result<(), AcdError> {
    if !(s.aht_alpha > 0.0 && s.aht_alpha <= 1.0) {
        return Err(AcdError::InvalidConfig(format!(
            "settings.aht_alpha must be in (0, 1], got {}",
            s.aht_alpha
        )));
    }
    if s.ring_timeout < Duration::from_secs(1) {
        return Err(AcdError::InvalidConfig(
            "settings.ring_timeout_secs must be at least 1".into(),
        ));
    }
    if s.max_no_answer_strikes == 0 {
        return Err(AcdError::InvalidConfig(
            "settings.max_no_answer_strikes must be at least 1".into(),
        ));
    }
    if matches!(s.orphan_overflow, OverflowTarget::Pool(_)) {
        return Err(AcdError::InvalidConfig(
            "settings.orphan_overflow cannot be a pool".into(),
        ));
    }
    Ok(())
}

/// Unique id and skill levels of one agent (records its id).
fn validate_agent<'a>(a: &'a AgentProfile, agents: &mut HashSet<&'a str>) -> Result<(), AcdError> {
    if !agents.insert(a.id.as_str()) {
        return Err(duplicate("agent", a.id.as_str()));
    }
    for (skill, &l) in &a.skills {
        if !(1..=5).contains(&l) {
            return Err(AcdError::InvalidConfig(format!(
                "agent {}: skill {skill} level {l} is outside 1..=5",
                a.id
            )));
        }
    }
    Ok(())
}

/// The pools and practices an agent names exist.
fn validate_agent_refs(a: &AgentProfile, ids: &Declared<'_>) -> Result<(), AcdError> {
    for p in &a.pools {
        if !ids.pools.contains(p.as_str()) {
            return Err(unknown(format!("agent {}", a.id), "pool", p.as_str()));
        }
    }
    for p in &a.practices {
        if !ids.practices.contains(p.as_str()) {
            return Err(unknown(format!("agent {}", a.id), "practice", p.as_str()));
        }
    }
    Ok(())
}

fn validate_practice(p: &PracticePolicy, ids: &Declared<'_>) -> Result<(), AcdError> {
    let ctx = format!("practice {}", p.id);
    for a in &p.dedicated_agents {
        if !ids.agents.contains(a.as_str()) {
            return Err(unknown(ctx, "agent", a.as_str()));
        }
    }
    if p.steps.is_empty() {
        return Err(AcdError::InvalidConfig(format!("{ctx}: no routing step")));
    }
    let mut prev = Duration::ZERO;
    for (i, st) in p.steps.iter().enumerate() {
        if st.after < prev {
            return Err(AcdError::InvalidConfig(format!(
                "{ctx}: step {i} starts before the previous one"
            )));
        }
        prev = st.after;
        validate_step(&ctx, i, st, ids)?;
    }
    if let OverflowTarget::Pool(pool) = &p.overflow {
        if !ids.pools.contains(pool.as_str()) {
            return Err(unknown(format!("{ctx} overflow"), "pool", pool.as_str()));
        }
    }
    if p.ring_timeout.is_some_and(|r| r < Duration::from_secs(1)) {
        return Err(AcdError::InvalidConfig(format!(
            "{ctx}: ring_timeout_secs must be at least 1"
        )));
    }
    if p.max_no_answer_strikes == Some(0) {
        return Err(AcdError::InvalidConfig(format!(
            "{ctx}: max_no_answer_strikes must be at least 1"
        )));
    }
    Ok(())
}

/// One routing step's selector (`ctx` names the practice).
fn validate_step(
    ctx: &str,
    i: usize,
    st: &RoutingStep,
    ids: &Declared<'_>,
) -> Result<(), AcdError> {
    if st.select.min_level > 5 {
        return Err(AcdError::InvalidConfig(format!(
            "{ctx}: step {i} min_level above 5"
        )));
    }
    if st.select.min_level > 1 && st.select.skill.is_none() {
        return Err(AcdError::InvalidConfig(format!(
            "{ctx}: step {i} has min_level without skill"
        )));
    }
    if let Some(pool) = &st.select.pool {
        if !ids.pools.contains(pool.as_str()) {
            return Err(unknown(format!("{ctx} step {i}"), "pool", pool.as_str()));
        }
    }
    Ok(())
}
