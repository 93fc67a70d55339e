//! permanence-sip (placeholder, being built)
