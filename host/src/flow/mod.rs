//! Flows: the routing document admins write, its validation, and its
//! diagram. The engine (`crate::engine`) runs a [`CompiledFlow`].

pub mod diagram;
pub mod model;
pub mod positions;
mod schema;
pub mod secrets;
pub mod validate;

pub use model::Flow;
pub use positions::{Location, Positions};
pub use validate::{
    CompiledFlow, Issue, PluginCatalog, RESERVED_RESULT_NAMES, Report, compile,
    is_reserved_result_name,
};

/// Reads a flow from YAML or JSON (JSON is YAML too). A syntax or type
/// error names the path of the field, such as
/// `decision_trees.support.decisions.welcome.targets[2].when`, and the
/// line and column it stands at.
pub fn parse(text: &str) -> Result<Flow, Issue> {
    parse_all(text).map_err(|mut issues| issues.remove(0))
}

/// Like [`parse`], but a document with type errors reports every one of
/// them at once, and every missing field (the document is checked against
/// the flow's JSON Schema), each with its path; the first is the one serde
/// met first.
pub fn parse_all(text: &str) -> Result<Flow, Vec<Issue>> {
    // Through a JSON value: YAML libraries want `!tag` syntax for enums,
    // while admins (and JSON) write `{queue: support}`.
    let value: serde_json::Value = serde_norway::from_str(text).map_err(|e| {
        vec![Issue {
            path: "(document)".into(),
            message: format!("not valid YAML or JSON: {e}"),
            at: e.location().map(|at| Location {
                line: at.line(),
                column: at.column(),
            }),
        }]
    })?;
    let first = match serde_path_to_error::deserialize(&value) {
        Ok(flow) => return Ok(flow),
        Err(error) => serde_issue(error),
    };
    let mut issues = vec![first];
    for issue in schema::issues(&value) {
        if !issues.iter().any(|known| known.path == issue.path) {
            issues.push(issue);
        }
    }
    Positions::of(text).annotate(&mut issues);
    Err(issues)
}

fn serde_issue(error: serde_path_to_error::Error<serde_json::Error>) -> Issue {
    let path = error.path().to_string();
    let mut message = error.inner().to_string();
    if message.contains("untagged enum Step") {
        message = "a step is {action, config, on_error}, {if, then, else} or {loop, as, do, until, target, max_iterations}; this one is neither (check its field names)".into();
    } else if message.contains("untagged enum Text") {
        message = "a text is a string or {text, variants}".into();
    }
    Issue {
        path: if path == "." {
            "(document)".into()
        } else {
            path
        },
        message,
        at: None,
    }
}

/// The JSON Schema of the flow document, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Flow)).expect("the schema serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_path() {
        let yaml = "decision_trees:\n  support:\n    decisions:\n      welcome:\n        targets:\n          - when: sometimes\n            go: {queue: q}\n";
        let issue = parse(yaml).unwrap_err();
        assert_eq!(
            issue.path,
            "decision_trees.support.decisions.welcome.targets[0].when"
        );
        assert_eq!(
            issue.at,
            Some(Location {
                line: 6,
                column: 13
            })
        );
        assert!(
            issue
                .to_string()
                .contains("targets[0].when (line 6, column 13): "),
            "{issue}"
        );
        let syntax = parse(
            "queues: [unclosed
",
        )
        .unwrap_err();
        assert_eq!(syntax.path, "(document)");
        assert!(syntax.at.is_some(), "{syntax:?}");
        assert!(
            issue.message.contains("unknown variant `sometimes`"),
            "{}",
            issue.message
        );
    }

    /// Issue 11, item 6: every type error and missing field at once.
    #[test]
    fn every_type_error_is_reported_at_once() {
        let yaml = "queues:\n  a: { name: A, priority: high }\nterminates:\n  t: { cause: 5 }\n  u: { title: U }\n";
        let issues = parse_all(yaml).unwrap_err();
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert!(paths.contains(&"queues.a.priority"), "{issues:?}");
        let missing = issues.iter().find(|i| i.path == "terminates.u");
        assert_eq!(
            missing.unwrap().message,
            "missing field \"cause\"",
            "{issues:?}"
        );
        assert!(paths.contains(&"terminates.t.cause"), "{issues:?}");
        assert_eq!(parse(yaml).unwrap_err(), issues[0]);
    }

    #[test]
    fn the_schema_describes_the_document() {
        let schema = json_schema();
        let text = schema.to_string();
        for section in [
            "connectors",
            "time_groups",
            "decision_trees",
            "chatbots",
            "queues",
            "terminates",
            "automessages",
        ] {
            assert!(text.contains(section), "{section} missing from the schema");
        }
    }
}
