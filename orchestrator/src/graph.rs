//! The service dependency graph (placeholder: being written).
