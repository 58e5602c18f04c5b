//! Everything that calls into the kernel directly, and the only code in the crate allowed
//! `unsafe`: keeping it in one place keeps the soundness arguments reviewable together. The one
//! module that is not a kernel call is `sha_ni`: CPU instructions with no safe wrapper in any
//! maintained crate for two streams at once (its own header says why and how it stays sound).
//!
//! Each function is safe to call with any arguments, because it only hands the kernel memory
//! it borrows for the call. Errors come back raw (errno or `io::Error`): the same errno means
//! different things for different calls, and [`crate::linux`] decides what.

pub(crate) mod ioctl;
pub(crate) mod keyring;
pub(crate) mod mapping;
pub(crate) mod sha_ni;
pub(crate) mod sysctl;
