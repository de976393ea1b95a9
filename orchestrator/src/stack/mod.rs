//! The stack file: loading, interpolation, merging and the typed model.
