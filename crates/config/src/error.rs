//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be loaded. Carries the file, the position
/// (1-based line and column, when known) and the field path
/// (`scrape_configs[0].scrape_interval`) where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub field: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn msg(message: impl Into<String>) -> ConfigError {
        ConfigError { file: None, line: None, column: None, field: None, message: message.into() }
    }

    pub(crate) fn at(mut self, pos: crate::Pos, field: impl Into<String>) -> ConfigError {
        if pos.line > 0 {
            self.line = Some(pos.line);
            self.column = Some(pos.column);
        }
        self.field = Some(field.into());
        self
    }

    pub(crate) fn in_file(mut self, file: impl Into<PathBuf>) -> ConfigError {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "parsing YAML file {}: ", file.display())?;
        }
        match (self.line, self.column) {
            (Some(l), Some(c)) if c > 0 => write!(f, "line {l}, column {c}: ")?,
            (Some(l), _) => write!(f, "line {l}: ")?,
            _ => {}
        }
        if let Some(field) = &self.field {
            if !field.is_empty() {
                write!(f, "field {field}: ")?;
            }
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
