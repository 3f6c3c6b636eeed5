//! Templates that render in the host, without the sandbox.
//!
//! The sandbox exists for templates that can build more than they read: a
//! loop, a `set` doubling a string, `~` or `*` on strings, a macro. Most of
//! a flow's texts are nothing of the kind: `Hi {{ contact.name or 'there'
//! }}, order {{ data.order }} is {{ order.body.status|lower }}.` Such a
//! template is *direct*: every instruction of its compiled form runs at
//! most once (jumps only go forward, so there is no loop), and none makes a
//! value larger than the values it was given (lookups, constants,
//! comparisons, tests and a list of filters whose output is no larger than
//! their input, up to case mapping). Its work and memory are then bounded
//! by its own length plus the size of the context, which is the host's own
//! data, so it is safe to render here, and costs microseconds instead of a
//! sandbox instance (about 135 µs, see BENCHMARKS.md).
//!
//! The host renders with the settings the sandbox uses
//! (`host/template-sandbox/src/lib.rs`), so a direct template renders to
//! the same text, or fails with the same error, in either place.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::LazyLock;

use minijinja::machinery::{Instruction, get_compiled_template};
use minijinja::{Environment, Template, UndefinedBehavior};
use serde_json::Value;

use super::{TemplateError, describe};

/// Longer sources go to the sandbox, so parsing a plugin's template costs
/// the host at most this much. A flow's texts are far shorter.
const MAX_SOURCE_BYTES: usize = 4 * 1024;

/// The sandbox's fuel: a direct template never needs this much.
const TEMPLATE_FUEL: u64 = 50_000;

/// Filters whose result is no larger than their input (or than one of
/// their arguments), computed in one pass over it.
const NON_GROWING_FILTERS: &[&str] = &[
    "abs",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "first",
    "float",
    "int",
    "last",
    "length",
    "lower",
    "round",
    "string",
    "title",
    "trim",
    "upper",
];

/// The sandbox's environment, rebuilt in the host.
static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
});

/// Renders `source` here if it is direct, to at most `max_bytes`; `None`
/// when it is not (or does not parse), for the sandbox to render or to
/// report.
pub fn render(
    source: &str,
    context: &Value,
    max_bytes: usize,
) -> Option<Result<String, TemplateError>> {
    if source.len() > MAX_SOURCE_BYTES {
        return None;
    }
    // minijinja's lexer has panicked on odd input before (see `check`):
    // such a text is the sandbox's to report.
    catch_unwind(AssertUnwindSafe(|| {
        let template = ENVIRONMENT.template_from_str(source).ok()?;
        is_direct(&template).then(|| render_bounded(&template, context, max_bytes))
    }))
    .unwrap_or(None)
}

/// Whether every instruction of `template` is one that runs at most once
/// and builds nothing larger than its inputs.
pub fn is_direct(template: &Template) -> bool {
    let compiled = get_compiled_template(template);
    let code = &compiled.instructions;
    compiled.blocks.is_empty()
        && (0..code.len() as u32).all(|at| code.get(at).is_some_and(|i| is_direct_step(at, i)))
}

fn is_direct_step(at: u32, instruction: &Instruction) -> bool {
    use Instruction::*;
    match instruction {
        EmitRaw(_) | Emit | Lookup(_) | GetAttr(_) | GetItem | LoadConst(_) => true,
        Eq | Ne | Gt | Gte | Lt | Lte | CompareAndPreserve(_) | In | Not | Neg => true,
        DupTop | DiscardTop | Swap | PerformTest(..) => true,
        // Forward only: no instruction runs twice.
        Jump(to) | JumpIfFalse(to) | JumpIfFalseOrPop(to) | JumpIfTrueOrPop(to) => *to > at,
        ApplyFilter(name, ..) => NON_GROWING_FILTERS.contains(name),
        _ => false,
    }
}

fn render_bounded(
    template: &Template,
    context: &Value,
    max_bytes: usize,
) -> Result<String, TemplateError> {
    let mut out = Bounded::new(max_bytes);
    match template.render_captured_to(context, &mut out) {
        Ok(_) => String::from_utf8(out.bytes).map_err(|e| TemplateError(e.to_string())),
        Err(_) if out.overflowed => Err(TemplateError(format!(
            "rendered text larger than {max_bytes} bytes"
        ))),
        Err(e) => Err(TemplateError(describe(&e))),
    }
}

/// A writer that refuses to grow past its limit (as the sandbox's does).
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl Bounded {
    fn new(limit: usize) -> Self {
        Bounded {
            bytes: Vec::new(),
            limit,
            overflowed: false,
        }
    }
}

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Err(io::Error::other("output limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(source: &str) -> bool {
        is_direct(&ENVIRONMENT.template_from_str(source).unwrap())
    }

    #[test]
    fn lookups_conditions_and_shrinking_filters_are_direct() {
        for source in [
            "Hi {{ contact.name or 'there' }}! Order {{ data.order }} is {{ order.body.status }}.",
            "{% if data.vip and data.n > 3 %}VIP{% elif data.n is even %}even{% else %}-{% endif %}",
            "{{ data['order id']|default('none')|upper }} {{ data.items|length }}",
            "{{ contact.name|title|trim if contact.name is defined else 'friend' }}",
            "{% raw %}{{ literal }}{% endraw %}",
        ] {
            assert!(direct(source), "{source}");
        }
    }

    /// Anything that can run twice or build more than it read goes to the
    /// sandbox.
    #[test]
    fn loops_growth_and_calls_are_not_direct() {
        for source in [
            "{% for i in range(10) %}x{% endfor %}",
            "{% set a = data.x %}{{ a }}",
            "{{ data.x ~ data.x }}",
            "{{ data.x * 1000 }}",
            "{{ data.x + data.x }}",
            "{{ data.items|join(data.sep) }}",
            "{{ data.x|replace('a', data.y) }}",
            "{{ range(1000)|list }}",
            "{% macro m() %}x{% endmacro %}{{ m() }}",
            "{% filter upper %}{{ data.x }}{% endfilter %}",
            "{% with a = 1 %}{{ a }}{% endwith %}",
            "{{ data.x[1:] }}",
            "{{ data.x.upper() }}",
            "{{ [data.x, data.x] }}",
            "{{ {'a': data.x} }}",
        ] {
            assert!(!direct(source), "{source}");
        }
    }

    #[test]
    fn renders_as_the_sandbox_does() {
        let context = serde_json::json!({"contact": {"name": "ada"}, "data": {"none": null}});
        let render = |source: &str, max: usize| render(source, &context, max).unwrap();
        assert_eq!(
            render("Hi {{ contact.name|title }}", 100).unwrap(),
            "Hi Ada"
        );
        // A none value prints as nothing; an undefined one is an error.
        assert_eq!(render("[{{ data.none }}]", 100).unwrap(), "[]");
        let undefined = render("{{ data.missing }}", 100).unwrap_err();
        assert!(undefined.0.contains("undefined"), "{undefined}");
        assert_eq!(
            render("{{ contact.name }}", 2).unwrap_err().0,
            "rendered text larger than 2 bytes"
        );
    }

    #[test]
    fn long_unreadable_or_growing_templates_are_left_to_the_sandbox() {
        let context = serde_json::json!({});
        let long = format!("{{{{ x }}}}{}", " ".repeat(MAX_SOURCE_BYTES));
        assert!(render(&long, &context, 100).is_none());
        assert!(render("{{ unclosed", &context, 100).is_none());
        assert!(render("{% for i in range(3) %}{% endfor %}", &context, 100).is_none());
    }
}
