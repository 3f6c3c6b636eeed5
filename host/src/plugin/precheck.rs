//! What is checked before a component is compiled: compiling costs
//! seconds and gigabytes for a large one, so size, function count and the
//! contract it exports are read first, in one cheap pass of the parser.

use wasmparser::{Parser, Payload};

use super::LoadError;

/// The largest component accepted: Rust plugins are under 200 KiB, but a
/// Python one carries CPython (about 18 MB with componentize-py 0.25) and a
/// JavaScript one SpiderMonkey (about 12 MB).
pub const MAX_COMPONENT_BYTES: usize = 32 * 1024 * 1024;
/// Functions of all its core modules together.
pub const MAX_FUNCTIONS: u32 = 50_000;

/// Refuses a component that is too large, has too many functions, or
/// exports no `flowhost:plugin` interface, before compiling it.
pub fn precheck(label: &str, bytes: &[u8]) -> Result<(), LoadError> {
    let invalid = |reason: String| LoadError::InvalidComponent {
        plugin: label.to_string(),
        reason,
    };
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(invalid(format!(
            "the component is {} bytes; at most {MAX_COMPONENT_BYTES} are accepted",
            bytes.len()
        )));
    }
    let mut functions: u32 = 0;
    let mut exports = Vec::new();
    for (index, payload) in Parser::new(0).parse_all(bytes).enumerate() {
        match payload.map_err(|e| invalid(format!("{e}")))? {
            Payload::CodeSectionStart { count, .. } => {
                functions = functions.saturating_add(count);
                if functions > MAX_FUNCTIONS {
                    return Err(invalid(format!(
                        "the component has more than {MAX_FUNCTIONS} functions"
                    )));
                }
            }
            Payload::ComponentExportSection(section) => {
                for export in section {
                    let export = export.map_err(|e| invalid(format!("{e}")))?;
                    exports.push(export.name.name.to_string());
                }
            }
            // The file's own header (nested modules have theirs too).
            Payload::Version {
                encoding: wasmparser::Encoding::Module,
                ..
            } if index == 0 => {
                return Err(invalid(
                    "this is a core wasm module, not a component (build for wasm32-wasip2)".into(),
                ));
            }
            _ => {}
        }
    }
    if !exports
        .iter()
        .any(|name| name.starts_with("flowhost:plugin/"))
    {
        return Err(LoadError::NotAPlugin {
            plugin: label.to_string(),
            exports: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
        });
    }
    Ok(())
}
