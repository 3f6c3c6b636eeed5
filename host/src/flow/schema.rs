//! The document checked against the flow's JSON Schema: every type error
//! and missing field, where serde stops at the first.

use std::sync::OnceLock;

use serde_json::Value;

use super::Issue;

/// Longest message kept from the schema validator (an `anyOf` of a big
/// type can print the whole subtree).
const MAX_MESSAGE: usize = 300;

fn validator() -> Option<&'static jsonschema::Validator> {
    static VALIDATOR: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| jsonschema::validator_for(&super::json_schema()).ok())
        .as_ref()
}

/// What the schema finds wrong in `document`, one issue per path.
pub fn issues(document: &Value) -> Vec<Issue> {
    let Some(validator) = validator() else {
        return Vec::new();
    };
    let mut issues: Vec<Issue> = Vec::new();
    for error in validator.iter_errors(document) {
        let pointer = error.instance_path().as_str().to_string();
        let (path, missing) = dotted(document, &pointer, &error.to_string());
        if issues.iter().any(|known| known.path == path) {
            continue;
        }
        let mut message = missing.unwrap_or_else(|| error.to_string());
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        issues.push(Issue {
            path,
            message,
            at: None,
        });
    }
    issues
}

/// A JSON pointer as the dotted path validation uses (`a.b[2].c`); array
/// indices are told from map keys by the document itself. A missing
/// required field is reported at its object, with its name in the message.
fn dotted(document: &Value, pointer: &str, message: &str) -> (String, Option<String>) {
    let mut path = String::new();
    let mut at = document;
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match at {
            Value::Array(items) => {
                path.push_str(&format!("[{segment}]"));
                at = segment
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .unwrap_or(&Value::Null);
            }
            _ => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&segment);
                at = at.get(&segment).unwrap_or(&Value::Null);
            }
        }
    }
    if path.is_empty() {
        path = "(document)".into();
    }
    let missing = message
        .strip_suffix(" is a required property")
        .map(|name| format!("missing field {name}"));
    (path, missing)
}
