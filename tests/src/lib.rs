//! Integration-test harness (placeholder).
