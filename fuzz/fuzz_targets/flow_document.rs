//! A flow document (YAML) through parsing and validation, with no plugins:
//! every error must come back as a report, never a panic.
#![no_main]

use flowhost::flow::{self, PluginCatalog};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(parsed) = flow::parse(text) {
        let _ = flow::compile(parsed, &PluginCatalog::default());
    }
});
