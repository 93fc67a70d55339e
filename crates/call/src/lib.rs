//! permanence-call (placeholder, being built)
