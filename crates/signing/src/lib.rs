//! Signing of fs-verity digests: key and certificate loading, PKCS#7 SignedData exactly as
//! libfsverity builds it, verification, and the [`Signer`] trait. Knows nothing about RPM.
#![forbid(unsafe_code)]
