//! The loader's error: what was wrong, where (file:line:column and key path), and what
//! to do. The CLI prints it with the offending source line and a caret under the column.

use std::fmt;
use std::path::PathBuf;

use super::de::DeError;
use super::yaml::{Span, YamlError};

/// A problem at a place in a stack file.
#[derive(Debug, Clone)]
pub struct Located {
    pub span: Span,
    /// The key path, e.g. `services.web.ports[1]`; empty at the top level.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.span)?;
        if !self.path.is_empty() {
            write!(f, " {}:", self.path)?;
        }
        write!(f, " {}", self.message)
    }
}

impl Located {
    /// The source line and a caret under the column, for a human reading the error.
    pub fn snippet(&self) -> Option<String> {
        let line = self.span.file.line(self.span.line)?;
        let col = (self.span.col as usize).saturating_sub(1);
        let pad: String = line
            .chars()
            .take(col)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        Some(format!(
            "{:>5} | {}\n      | {}^",
            self.span.line, line, pad
        ))
    }
}

/// Every way loading a stack can fail. Each message says what is wrong and, where it
/// helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A problem at a known place in a stack file.
    #[error("{0}")]
    At(Box<Located>),
    /// A file (stack file, env file, extends or include target) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No stack file was given and none of the default names exists.
    #[error("no stack file found in {} or its parents (looked for {names}); name one with -f", dir.display())]
    NoFile { dir: PathBuf, names: String },
    /// A problem that belongs to no single place (project name, cycles across files, …).
    #[error("{0}")]
    Invalid(String),
}

impl StackError {
    pub fn at(span: &Span, path: impl Into<String>, message: impl Into<String>) -> StackError {
        StackError::At(Box::new(Located {
            span: span.clone(),
            path: path.into(),
            message: message.into(),
        }))
    }

    /// The located part, if the error has a place.
    pub fn located(&self) -> Option<&Located> {
        match self {
            StackError::At(l) => Some(l),
            _ => None,
        }
    }
}

impl From<YamlError> for StackError {
    fn from(e: YamlError) -> Self {
        StackError::at(&e.span, "", e.message)
    }
}

impl From<DeError> for StackError {
    fn from(e: DeError) -> Self {
        let mut message = e.message;
        if let Some(s) = e.suggestion {
            message.push_str(&format!(" (did you mean `{s}`?)"));
        }
        match e.span {
            Some(span) => StackError::at(&span, e.path.unwrap_or_default(), message),
            None => StackError::Invalid(message),
        }
    }
}
