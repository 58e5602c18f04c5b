//! Kernel interface: FS_IOC_ENABLE_VERITY / MEASURE / READ_METADATA and the `.fs-verity` keyring.
//! The only module of the crate allowed to use `unsafe` (raw syscalls).
#![allow(unsafe_code)]
