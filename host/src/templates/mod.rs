//! minijinja templates: action configurations, message texts, conditions
//! and the plugins' `templates` capability. A template that could build
//! more than it reads (a loop, a `set`, string concatenation) renders in
//! the template sandbox (`plugin::TemplateSandbox`), so no template can take
//! the host's memory or time; one that provably cannot ([`direct`]) renders
//! here, as do parsing (the checks of `flowhost validate`), where each costs
//! only the template's own length and its context's size. Expressions
//! (conditions) are evaluated in the sandbox.

pub mod direct;

use std::collections::HashSet;
use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

pub use crate::plugin::TemplateError;
use crate::plugin::TemplateSandbox;

/// The most a flow's template may render to (a message, a configuration
/// string, a condition's value). Plugins render up to their own output limit.
pub const MAX_RENDERED_BYTES: usize = 64 * 1024;

/// The environment templates are parsed with; the sandbox renders with the
/// same settings (`host/template-sandbox/src/lib.rs`).
static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env
});

/// Whether `text` contains template syntax at all; plain strings skip the
/// template engine.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Renders one template against `context`, to at most `max_bytes`.
pub async fn render(
    sandbox: &TemplateSandbox,
    source: &str,
    context: &Value,
    max_bytes: usize,
) -> Result<String, TemplateError> {
    if !is_template(source) {
        if source.len() > max_bytes {
            return Err(TemplateError(format!("text larger than {max_bytes} bytes")));
        }
        return Ok(source.to_string());
    }
    if let Some(rendered) = direct::render(source, context, max_bytes) {
        return rendered;
    }
    sandbox.render(source, context, max_bytes).await
}

/// Renders every string inside a JSON value (an action's configuration),
/// keeping its shape. The error names the JSON path of the failing string.
pub async fn render_json(
    sandbox: &TemplateSandbox,
    value: &Value,
    context: &Value,
) -> Result<Value, TemplateError> {
    // The template strings first, then each rendered in turn (an async
    // walk would need boxed recursion).
    let mut strings = Vec::new();
    collect_strings(value, "config".to_string(), &mut strings);
    let mut rendered = value.clone();
    for (path, pointer, text) in strings {
        let text = render(sandbox, &text, context, MAX_RENDERED_BYTES)
            .await
            .map_err(|e| TemplateError(format!("{path}: {}", e.0)))?;
        if let Some(slot) = rendered.pointer_mut(&pointer) {
            *slot = Value::String(text);
        }
    }
    Ok(rendered)
}

/// `(readable path, JSON pointer, text)` of every template string inside
/// `value`.
fn collect_strings(value: &Value, path: String, out: &mut Vec<(String, String, String)>) {
    fn walk(value: &Value, path: &str, pointer: &str, out: &mut Vec<(String, String, String)>) {
        match value {
            Value::String(text) if is_template(text) => {
                out.push((path.to_string(), pointer.to_string(), text.clone()))
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(
                        item,
                        &format!("{path}[{i}]"),
                        &format!("{pointer}/{i}"),
                        out,
                    );
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    let escaped = k.replace('~', "~0").replace('/', "~1");
                    walk(
                        v,
                        &format!("{path}.{k}"),
                        &format!("{pointer}/{escaped}"),
                        out,
                    );
                }
            }
            _ => {}
        }
    }
    walk(value, &path, "", out)
}

/// Parses a template without rendering it; returns the top-level names it
/// reads that it does not define itself.
pub fn check(source: &str) -> Result<HashSet<String>, TemplateError> {
    if !is_template(source) {
        return Ok(HashSet::new());
    }
    without_panic(|| {
        let template = ENVIRONMENT
            .template_from_str(source)
            .map_err(|e| TemplateError(describe(&e)))?;
        if let Some(unknown) = unknown_filter_or_test(&template) {
            return Err(TemplateError(unknown));
        }
        Ok(template.undeclared_variables(false))
    })
}

/// The first filter or test `template` applies that the template engine
/// does not have, described (`unknown filter `uppr``): minijinja finds
/// out only when a render reaches it, which would fail a customer's
/// message instead of the admin's validation.
fn unknown_filter_or_test(template: &minijinja::Template) -> Option<String> {
    use minijinja::machinery::{Instruction, get_compiled_template};
    let compiled = get_compiled_template(template);
    let lists = std::iter::once(&compiled.instructions).chain(compiled.blocks.values());
    for instructions in lists {
        for index in 0..instructions.len() {
            let (kind, probe, name) = match instructions.get(index as u32) {
                Some(Instruction::ApplyFilter(name, ..)) => ("filter", "none|", *name),
                Some(Instruction::PerformTest(name, ..)) => ("test", "none is ", *name),
                _ => continue,
            };
            // Applied to `none`, a missing one is `UnknownFilter` or
            // `UnknownTest`; one that exists may fail otherwise, or not.
            let missing = ENVIRONMENT
                .compile_expression(&format!("{probe}{name}"))
                .and_then(|expression| expression.eval(()))
                .is_err_and(|e| {
                    matches!(
                        e.kind(),
                        minijinja::ErrorKind::UnknownFilter | minijinja::ErrorKind::UnknownTest
                    )
                });
            if missing {
                return Some(format!("unknown {kind} `{name}`"));
            }
        }
    }
    None
}

/// Parses an expression (`data.vip and order.ok`); returns the names it reads.
pub fn check_expression(expression: &str) -> Result<HashSet<String>, TemplateError> {
    without_panic(|| {
        let compiled = ENVIRONMENT
            .compile_expression(expression)
            .map_err(|e| TemplateError(describe(&e)))?;
        Ok(compiled.undeclared_variables(false))
    })
}

/// Runs a parse, turning a panic inside minijinja into an error. The
/// fuzzer found one: minijinja 2.24's lexer panics ("empty lexer stack")
/// on an expression that contains `}}`. A flow's text must never take the
/// process down, so any such failure is an invalid template instead.
fn without_panic<T>(
    parse: impl FnOnce() -> Result<T, TemplateError> + std::panic::UnwindSafe,
) -> Result<T, TemplateError> {
    std::panic::catch_unwind(parse).unwrap_or_else(|_| {
        Err(TemplateError(
            "the template engine could not read this text".into(),
        ))
    })
}

/// Evaluates an expression against `context` into JSON.
pub async fn evaluate(
    sandbox: &TemplateSandbox,
    expression: &str,
    context: &Value,
) -> Result<Value, TemplateError> {
    sandbox
        .evaluate(expression, context, MAX_RENDERED_BYTES)
        .await
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
    fn checks_name_what_a_template_reads() {
        let names = check("Hi {{ contact.name }} {% set x = 1 %}{{ x }}").unwrap();
        assert_eq!(names, HashSet::from(["contact".to_string()]));
        assert!(check("{{ unclosed").is_err());
        assert!(check("plain text").unwrap().is_empty());
    }

    /// An unknown filter or test is an error when the flow is checked, not
    /// when a customer's message is rendered; known ones pass, even where
    /// applied to `none` they would fail (`batch`), and in blocks.
    #[test]
    fn unknown_filters_and_tests_are_named() {
        let error = |source: &str| check(source).unwrap_err().to_string();
        assert!(error("{{ contact.name|uppr }}").contains("unknown filter `uppr`"));
        assert!(error("{% if data.n is evn %}x{% endif %}").contains("unknown test `evn`"));
        assert!(error("{% filter shout %}hi{% endfilter %}").contains("unknown filter `shout`"));
        assert!(
            error("{% for x in data.items %}{{ x|title|nope }}{% endfor %}")
                .contains("unknown filter `nope`")
        );
        for fine in [
            "{{ contact.name|upper|default('there') }}",
            "{{ data.items|batch(2)|list|length }}",
            "{% if data.n is even and data.m is defined %}x{% endif %}",
            "{{ data.items|join(', ') }}",
        ] {
            assert!(check(fine).is_ok(), "{fine}: {:?}", check(fine));
        }
    }

    /// Found by the `template` fuzz target (see FUZZING.md).
    #[test]
    fn a_text_that_panics_the_lexer_is_an_invalid_template() {
        let found =
            "Hi}}{ c^itact.name or 'there' % for i in data.lsta.lsit %}{{ i }}{% endfor %} \x7f{ ";
        assert!(check_expression(found).is_err());
        assert!(check_expression("x }} y").is_err());
        let _ = check(found);
    }

    #[test]
    fn template_strings_are_found_with_their_paths() {
        let mut found = Vec::new();
        let config =
            json!({"url": "https://x/{{ data.id }}", "n": 1, "h": {"a/b": ["x", "{{ y }}"]}});
        collect_strings(&config, "config".into(), &mut found);
        found.sort();
        assert_eq!(
            found,
            [
                (
                    "config.h.a/b[1]".to_string(),
                    "/h/a~1b/1".to_string(),
                    "{{ y }}".to_string()
                ),
                (
                    "config.url".into(),
                    "/url".into(),
                    "https://x/{{ data.id }}".into()
                ),
            ]
        );
    }

    /// A direct template renders to the same text, or fails with the same
    /// error, in the host as in the sandbox.
    #[tokio::test]
    async fn direct_templates_render_as_in_the_sandbox() {
        let runtime = crate::plugin::PluginRuntime::new(&Default::default()).unwrap();
        let sandbox = runtime.templates();
        let context = json!({"contact": {"name": "ada lovelace"}, "language": "tr",
            "data": {"n": 4, "vip": true, "none": null, "items": ["a", "b"], "price": 12.5,
                     "order id": " 77 ", "nested": {"k": [1, {"x": "y"}]}}});
        for source in [
            "Hi {{ contact.name or 'there' }}! {{ contact.name|title }} / {{ contact.name|capitalize }}",
            "{% if data.vip and data.n > 3 %}VIP{% elif data.n is even %}even{% else %}-{% endif %}",
            "[{{ data['order id']|trim }}] [{{ data.none }}] {{ data.items|length }} {{ data.items|first }}",
            "{{ data.price|round }} {{ data.price|int }} {{ data.n is odd }} {{ 'a' in data.items }}",
            "{{ data.nested }} {{ data.items }} {{ data.missing|default('none')|upper }}",
            "{{ data.missing }}",
            "{{ data.vip.x.y }}",
            "{{ contact.name|int }}",
            "{{ data.n < 3 < 5 }} {{ not data.vip }} {{ -data.n }}",
        ] {
            let host = direct::render(source, &context, 40);
            assert!(host.is_some(), "{source} should render in the host");
            let in_sandbox = sandbox.render(source, &context, 40).await;
            assert_eq!(host.unwrap(), in_sandbox, "{source}");
        }
    }

    #[test]
    fn truthiness_follows_minijinja() {
        assert!(!is_truthy(&json!(null)));
        assert!(!is_truthy(&json!("")));
        assert!(is_truthy(&json!([0])));
        assert!(!is_truthy(&json!(0.0)));
    }
}
