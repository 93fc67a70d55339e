//! permanence-acd (placeholder, being built)
