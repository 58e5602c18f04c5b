//! Reading installed packages from the rpmdb (sqlite backend), read-only.
#![allow(dead_code)]
