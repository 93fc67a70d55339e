//! permanence-engine (placeholder, being built)
