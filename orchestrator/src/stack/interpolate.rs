//! (temporary stand-in; the real module is being written)
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum InterpolateError {
    #[error("required variable {name} is missing a value: {message}")]
    MissingRequired { name: String, message: String },
}
pub fn interpolate(text: &str, _lookup: Lookup) -> Result<String, InterpolateError> {
    Ok(text.to_string())
}
pub fn interpolate_report(
    text: &str,
    lookup: Lookup,
) -> Result<(String, Vec<String>), InterpolateError> {
    Ok((interpolate(text, lookup)?, Vec::new()))
}
