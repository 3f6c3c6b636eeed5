//! minijinja templates: action configurations, message texts and the
//! plugins' `templates` capability all render through here.

use std::collections::HashSet;
use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Bounds template work: a loop over a huge range runs out of fuel instead
/// of stalling the conversation. Plenty for real message templates.
pub const TEMPLATE_FUEL: u64 = 50_000;

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Printing something undefined is an error (a typo must not reach a
    // customer as an empty string); testing it in `if` is allowed.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    // A known-but-empty value (a customer whose name the channel does not
    // tell) prints as nothing, never as "none" in a customer's message.
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
});

/// A template that failed to parse or render, with minijinja's reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Whether `text` contains template syntax at all; plain strings skip the
/// template engine.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Renders one template against `context`.
pub fn render(source: &str, context: &Value) -> Result<String, TemplateError> {
    if !is_template(source) {
        return Ok(source.to_string());
    }
    ENVIRONMENT
        .render_str(source, context)
        .map_err(|e| TemplateError(describe(&e)))
}

/// Renders every string inside a JSON value (an action's configuration),
/// keeping its shape. The error names the JSON path of the failing string.
pub fn render_json(value: &Value, context: &Value) -> Result<Value, TemplateError> {
    fn walk(value: &Value, context: &Value, path: &str) -> Result<Value, TemplateError> {
        Ok(match value {
            Value::String(text) => Value::String(
                render(text, context).map_err(|e| TemplateError(format!("{path}: {}", e.0)))?,
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| walk(item, context, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), walk(v, context, &format!("{path}.{k}"))?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }
    walk(value, context, "config")
}

/// Parses a template without rendering it; returns the top-level names it
/// reads that it does not define itself.
pub fn check(source: &str) -> Result<HashSet<String>, TemplateError> {
    if !is_template(source) {
        return Ok(HashSet::new());
    }
    let template = ENVIRONMENT
        .template_from_str(source)
        .map_err(|e| TemplateError(describe(&e)))?;
    Ok(template.undeclared_variables(false))
}

/// Parses an expression (`data.vip and order.ok`); returns the names it reads.
pub fn check_expression(expression: &str) -> Result<HashSet<String>, TemplateError> {
    let compiled = ENVIRONMENT
        .compile_expression(expression)
        .map_err(|e| TemplateError(describe(&e)))?;
    Ok(compiled.undeclared_variables(false))
}

/// Evaluates an expression against `context` into JSON.
pub fn evaluate(expression: &str, context: &Value) -> Result<Value, TemplateError> {
    let compiled = ENVIRONMENT
        .compile_expression(expression)
        .map_err(|e| TemplateError(describe(&e)))?;
    let value = compiled
        .eval(context)
        .map_err(|e| TemplateError(describe(&e)))?;
    if value.is_undefined() || value.is_none() {
        return Ok(Value::Null);
    }
    serde_json::to_value(&value).map_err(|e| TemplateError(e.to_string()))
}

/// Whether a JSON value counts as true in a condition (as in minijinja).
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn describe(error: &minijinja::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_context_and_leaves_plain_text_alone() {
        let ctx = json!({"contact": {"name": "Ada"}, "data": {"n": 3}});
        assert_eq!(
            render("Hi {{ contact.name }} ({{ data.n }})", &ctx).unwrap(),
            "Hi Ada (3)"
        );
        assert_eq!(
            render("no template {here}", &ctx).unwrap(),
            "no template {here}"
        );
    }

    #[test]
    fn a_null_value_prints_as_nothing() {
        let ctx = json!({"contact": {"name": null}});
        assert_eq!(render("Hi {{ contact.name }}!", &ctx).unwrap(), "Hi !");
        assert_eq!(
            render("Hi {{ contact.name or 'there' }}!", &ctx).unwrap(),
            "Hi there!"
        );
    }

    #[test]
    fn printing_an_undefined_value_is_an_error_but_testing_it_is_not() {
        let ctx = json!({"data": {}});
        assert!(render("{{ data.missing }}", &ctx).is_err());
        assert_eq!(
            render("{% if data.missing %}x{% else %}y{% endif %}", &ctx).unwrap(),
            "y"
        );
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let err = render(
            "{% for i in range(100000) %}{{ i }}{% endfor %}",
            &json!({}),
        )
        .unwrap_err();
        assert!(err.0.contains("fuel"), "{err}");
    }

    #[test]
    fn render_json_names_the_failing_path() {
        let config = json!({"url": "https://x/{{ data.id }}", "headers": {"a": "{{ nope }}"}});
        let err = render_json(&config, &json!({"data": {"id": 7}})).unwrap_err();
        assert!(err.0.starts_with("config.headers.a:"), "{err}");
        let ok = render_json(
            &json!({"url": "https://x/{{ data.id }}", "n": 1}),
            &json!({"data": {"id": 7}}),
        )
        .unwrap();
        assert_eq!(ok, json!({"url": "https://x/7", "n": 1}));
    }
}
