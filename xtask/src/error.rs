//! The ways a packaging command fails, and the exit code of each.

use std::process::ExitCode;

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Validation failed: the package must not be written. One problem per line.
    #[error("refused, validation failed:\n{0}\npackage: no package written")]
    Refused(String),
    /// An input (a previous package, a directory) could not be read.
    #[error("{0}")]
    Unreadable(String),
    /// The package could not be written, or cargo could not be asked where the binary is.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// 1: validation failed (nothing written) or writing failed; 2: unreadable input.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Refused(_) | Error::Failed(_) => ExitCode::from(1),
            Error::Unreadable(_) => ExitCode::from(2),
        }
    }
}
