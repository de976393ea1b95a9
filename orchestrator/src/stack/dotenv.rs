//! (temporary stand-in; the real module is being written)
use super::interpolate::Lookup;
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DotenvError(String);
pub fn parse_file(
    path: &std::path::Path,
    _lookup: Lookup,
) -> Result<indexmap::IndexMap<String, String>, DotenvError> {
    let text = std::fs::read_to_string(path).map_err(|e| DotenvError(e.to_string()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}
