//! What changes between two flow documents, entity by entity: a
//! connector, a decision tree, a queue... added, removed, or changed at
//! these JSON paths from these old values to these new ones.

use serde::Serialize;
use serde_json::Value;

/// The document's sections whose entries are entities, in the order the
/// diff lists them.
pub const SECTIONS: &[&str] = &[
    "accounts",
    "connectors",
    "time_groups",
    "time_conditions",
    "automessages",
    "decision_trees",
    "chatbots",
    "queues",
    "terminates",
    "vars",
];

/// Settings outside the sections, shown as one entity named `settings`.
const SETTINGS: &[&str] = &["default_language", "languages"];

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// One entity that differs.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EntityChange {
    /// `decision_trees`, `queues`, ... or `settings`.
    pub section: String,
    pub name: String,
    pub change: Change,
    /// For a changed entity, every value that differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// One value that differs, at its path from the document's root (as
/// validation errors name them: `decision_trees.support.decisions.welcome.targets[1].go`).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub path: String,
    /// Absent where the value was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// Absent where the value was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// The entities that differ from `old` to `new` (both flow documents as
/// JSON, normalised the same way).
pub fn diff(old: &Value, new: &Value) -> Vec<EntityChange> {
    let mut changes = Vec::new();
    let mut settings = Vec::new();
    for key in SETTINGS {
        compare(key, old.get(key), new.get(key), &mut settings);
    }
    if !settings.is_empty() {
        changes.push(EntityChange {
            section: "settings".into(),
            name: "settings".into(),
            change: Change::Changed,
            fields: settings,
        });
    }
    for section in SECTIONS {
        let empty = serde_json::Map::new();
        let entries = |doc: &Value| doc.get(section).and_then(Value::as_object).cloned();
        let (old_entries, new_entries) = (
            entries(old).unwrap_or_else(|| empty.clone()),
            entries(new).unwrap_or(empty),
        );
        let mut names: Vec<&String> = old_entries.keys().chain(new_entries.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let path = format!("{section}.{name}");
            let entity = |change, fields| EntityChange {
                section: section.to_string(),
                name: name.clone(),
                change,
                fields,
            };
            match (old_entries.get(name), new_entries.get(name)) {
                (None, Some(_)) => changes.push(entity(Change::Added, Vec::new())),
                (Some(_), None) => changes.push(entity(Change::Removed, Vec::new())),
                (Some(a), Some(b)) if a != b => {
                    let mut fields = Vec::new();
                    compare(&path, Some(a), Some(b), &mut fields);
                    changes.push(entity(Change::Changed, fields));
                }
                _ => {}
            }
        }
    }
    changes
}

/// What changes in the uploaded plugins two versions pin (section
/// `plugins`, one entity per plugin name, its `sha256` as the field).
pub fn diff_plugins(
    old: &std::collections::BTreeMap<String, String>,
    new: &std::collections::BTreeMap<String, String>,
) -> Vec<EntityChange> {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let (a, b) = (old.get(name), new.get(name));
            let change = match (a, b) {
                (None, Some(_)) => Change::Added,
                (Some(_), None) => Change::Removed,
                (Some(a), Some(b)) if a != b => Change::Changed,
                _ => return None,
            };
            let fields = match change {
                Change::Changed => vec![FieldChange {
                    path: format!("plugins.{name}.sha256"),
                    old: a.map(|h| Value::String(h.clone())),
                    new: b.map(|h| Value::String(h.clone())),
                }],
                _ => Vec::new(),
            };
            Some(EntityChange {
                section: "plugins".into(),
                name: name.clone(),
                change,
                fields,
            })
        })
        .collect()
}

/// Adds every leaf difference between `old` and `new` under `path`.
fn compare(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                compare(&format!("{path}.{key}"), a.get(key), b.get(key), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for index in 0..a.len().max(b.len()) {
                compare(&format!("{path}[{index}]"), a.get(index), b.get(index), out);
            }
        }
        (a, b) if a != b => out.push(FieldChange {
            path: path.to_string(),
            old: a.cloned(),
            new: b.cloned(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entities_added_removed_and_changed_with_their_paths() {
        let old = json!({
            "default_language": "en",
            "queues": {"sales": {"name": "Sales", "priority": 1}, "old": {"name": "Old"}},
            "decision_trees": {"t": {"decisions": {"d": {"targets": [{"go": {"queue": "sales"}}]}}}},
        });
        let new = json!({
            "default_language": "tr",
            "queues": {"sales": {"name": "Sales", "priority": 5}, "new": {"name": "New"}},
            "decision_trees": {"t": {"decisions": {"d": {"targets": [{"go": {"queue": "sales"}}, {"go": {"queue": "new"}}]}}}},
        });
        let changes = diff(&old, &new);
        let summary: Vec<(String, String, Change)> = changes
            .iter()
            .map(|c| (c.section.clone(), c.name.clone(), c.change.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("settings".into(), "settings".into(), Change::Changed),
                ("decision_trees".into(), "t".into(), Change::Changed),
                ("queues".into(), "new".into(), Change::Added),
                ("queues".into(), "old".into(), Change::Removed),
                ("queues".into(), "sales".into(), Change::Changed),
            ]
        );
        assert_eq!(
            changes[0].fields,
            [FieldChange {
                path: "default_language".into(),
                old: Some(json!("en")),
                new: Some(json!("tr")),
            }]
        );
        assert_eq!(
            changes[1].fields,
            [FieldChange {
                path: "decision_trees.t.decisions.d.targets[1]".into(),
                old: None,
                new: Some(json!({"go": {"queue": "new"}})),
            }]
        );
        assert_eq!(changes[4].fields[0].path, "queues.sales.priority");
        assert!(diff(&new, &new).is_empty());
    }
}
