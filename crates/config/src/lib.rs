//! permanence-config (placeholder, being built)
