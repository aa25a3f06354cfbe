//! A configuration file: any text through the loader (TOML, figment, path resolution) and the
//! start-up plan (validation, tenants, provider credentials), exactly as `check-config` runs
//! them. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::config::Config;
use ringcast::plan::Plan;
use std::io::Write;

fuzz_target!(|text: &[u8]| {
    // The loader reads a file (relative paths resolve against its folder), so the input is
    // one; the folder is per process, the file rewritten for every input.
    let mut file = tempfile::NamedTempFile::new().expect("a temp file");
    file.write_all(text).expect("written");
    let Ok(config) = Config::load(Some(file.path())) else {
        return;
    };
    let _ = Plan::build(&config);
});
