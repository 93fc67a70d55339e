//! permanence-media (placeholder, being built)
