//! permanence-sim (placeholder, being built)
