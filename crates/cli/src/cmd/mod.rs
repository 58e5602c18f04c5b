//! One module per subcommand; each exposes `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.
pub mod digest;
pub mod sign_file;
pub mod sign;
pub mod verify;
pub mod enable;
pub mod audit;
pub mod keyring;
pub mod status;
pub mod serve;
