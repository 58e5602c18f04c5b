//! Execution restricted to fs-verity-signed files with Linux's IPE LSM: the policy
//! (`policy`), the kernel's securityfs interface (`ipe`), the boot-time sequence (`apply`),
//! the state (`status`). See `docs/lockdown.md` for the threat model and the enrolment of the
//! policy signer, without which the kernel accepts no policy at all.

pub mod apply;
pub mod audit;
pub mod ipe;
pub mod policy;
pub mod status;

pub use apply::{apply, ApplyError, ApplyOptions, ApplyReport, RestrictMode};
pub use ipe::{DeployedPolicy, Ipe, IpeError, SECURITYFS};
pub use policy::{
    check_policy_name, parse_header, policy_text, read_policy_file, sign_policy, PolicyFile,
    PolicyFileError, PolicySpec, PolicyVersion, DEFAULT_POLICY_NAME, MAX_POLICY_FILE_LEN,
};
pub use status::{status, LockdownStatus};
