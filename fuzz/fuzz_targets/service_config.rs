//! The signing service's configuration: `server::Config::parse` on arbitrary TOML text
//! (relative paths resolve against a base that does not exist; nothing is opened).
//! Property: no panic.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use verity_service::server::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::parse(text, Path::new("/nonexistent/fuzz"));
});
