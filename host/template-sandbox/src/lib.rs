//! minijinja inside the sandbox. The environment matches the host's parse
//! checks (`host/src/templates.rs`): printing something undefined is an
//! error, a none value prints as nothing, and template work runs on fuel.
//! Output goes through a writer that stops at the caller's byte limit, so a
//! template can never build more output than it may return; anything else
//! it builds in memory is bounded by the sandbox's memory cap.

use std::io;

use minijinja::{Environment, UndefinedBehavior, Value};

wit_bindgen::generate!({ world: "sandbox", path: "wit" });

/// Template VM instructions per call: plenty for real message templates,
/// while a loop over a huge range runs out instead of stalling.
const TEMPLATE_FUEL: u64 = 50_000;

struct Sandbox;

impl Guest for Sandbox {
    fn render(template: String, context: String, max_bytes: u32) -> Result<String, String> {
        let context = parse_context(&context)?;
        let env = environment();
        let compiled = env.template_from_str(&template).map_err(describe)?;
        let mut out = Bounded::new(max_bytes as usize);
        match compiled.render_captured_to(context, &mut out) {
            Ok(_) => String::from_utf8(out.bytes).map_err(|e| e.to_string()),
            Err(_) if out.overflowed => Err(too_large(max_bytes)),
            Err(e) => Err(describe(e)),
        }
    }

    fn evaluate(expression: String, context: String, max_bytes: u32) -> Result<String, String> {
        let context = parse_context(&context)?;
        let env = environment();
        let compiled = env.compile_expression(&expression).map_err(describe)?;
        let value = compiled.eval(context).map_err(describe)?;
        let json = if value.is_undefined() || value.is_none() {
            "null".to_string()
        } else {
            let mut out = Bounded::new(max_bytes as usize);
            if serde_json::to_writer(&mut out, &value).is_err() {
                return Err(if out.overflowed {
                    too_large(max_bytes)
                } else {
                    "the value cannot be written as JSON".into()
                });
            }
            String::from_utf8(out.bytes).map_err(|e| e.to_string())?
        };
        Ok(json)
    }
}

export!(Sandbox);

fn environment() -> Environment<'static> {
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
}

fn parse_context(context: &str) -> Result<Value, String> {
    let context: serde_json::Value =
        serde_json::from_str(context).map_err(|e| format!("the context is not JSON: {e}"))?;
    Ok(Value::from_serialize(&context))
}

fn too_large(max_bytes: u32) -> String {
    format!("rendered text larger than {max_bytes} bytes")
}

/// minijinja's message with its causes, as the host's errors read.
fn describe(error: minijinja::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// A writer that refuses to grow past its limit.
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
