//! One module per subcommand; each exposes `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.
pub mod audit;
pub mod digest;
pub mod enable;
pub mod keyring;
pub mod lockdown;
pub mod report;
pub mod serve;
pub mod show;
pub mod sign;
pub mod sign_file;
pub mod status;
pub mod verify;
