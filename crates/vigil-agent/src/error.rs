//! The agent's errors: what stops it from starting or serving, each saying what to fix.

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration file is unreadable or wrong.
    #[error("invalid config in {file}: {message}")]
    Config {
        /// The file.
        file: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The persisted epoch could not be read.
    #[error(transparent)]
    Epoch(#[from] vigil_base::epoch::EpochFileError),
    /// The agent's directory could not be created.
    #[error("cannot create the agent directory {path}: {source}")]
    Dir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server process could not be started.
    #[error("cannot start the server ({program}): {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The NodeAdmin or metrics port could not be opened.
    #[error("cannot listen on {addr}: {source} (free the port or change it in the config)")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("NodeAdmin server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}
