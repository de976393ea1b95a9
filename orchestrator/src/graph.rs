//! The service dependency graph.
