//! Observe → diff → plan → execute (DESIGN.md, "reconcile/"). The plan is a pure
//! function of what the stack wants and what exists ([`plan`]); the executor (with the
//! engine and networking behind traits) comes with `berth up`.

pub mod backend;
pub mod desired;
pub mod execute;
pub mod hosts;
pub mod inline_files;
pub mod plan;
pub mod translate;
