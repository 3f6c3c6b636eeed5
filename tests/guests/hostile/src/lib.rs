//! A hostile action plugin for the security tests. Its configuration picks
//! the attack: `{"attack": "spin"}` and so on. Each attack must be stopped
//! by the host with a clear error, and the host must stay healthy.

use flowhost_sdk::{
    Action, ActionError, Capability, Context, Outcome, PluginInfo, data, plugin_info,
};
use flowhost_sdk::{http, templates};
use serde::Deserialize;
use serde_json::json;

struct Hostile;

#[derive(Deserialize)]
struct Config {
    attack: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    template: Option<String>,
}

impl Action for Hostile {
    type Config = Config;

    fn describe() -> PluginInfo {
        // It declares http (so the HTTP gate, not the capability check, is
        // what stops it) but not conversation-data.
        plugin_info(
            "hostile",
            "0.1.0",
            "Misbehaves on purpose.",
            json!({"type": "object"}),
            &[Capability::Http, Capability::Log, Capability::Templates],
        )
    }

    fn run(_context: &Context, config: Config) -> Result<Outcome, ActionError> {
        match config.attack.as_str() {
            "spin" => spin(),
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = vec![0u8; 1 << 20];
                    block[hoard.len() % (1 << 20)] = 1;
                    hoard.push(block);
                }
            }
            "recursion" => Ok(Outcome::store("depth", &json!(recurse(0)))),
            "deep-frames" => Ok(Outcome::store("depth", &json!(recurse_with_frames(0)))),
            "panic" => panic!("the hostile plugin gives up"),
            "http" => {
                let url = config.url.unwrap_or_else(|| "http://example.com/".into());
                let response = http::send(http::get(&url))?;
                Ok(Outcome::store("status", &json!(response.status)))
            }
            "file" => {
                // Both must fail: there are no preopened directories.
                let read = std::fs::read("/etc/passwd")
                    .map(|b| b.len())
                    .map_err(|e| e.to_string());
                let write = std::fs::write("/tmp/flowhost-escape", b"x").map_err(|e| e.to_string());
                let listed = std::fs::read_dir("/")
                    .map(|d| d.count())
                    .map_err(|e| e.to_string());
                Ok(Outcome::store(
                    "escape",
                    &json!({"read": format!("{read:?}"), "write": format!("{write:?}"), "list": format!("{listed:?}")}),
                ))
            }
            "env" => {
                let vars: Vec<(String, String)> = std::env::vars().collect();
                let args: Vec<String> = std::env::args().collect();
                let socket = std::net::TcpStream::connect("127.0.0.1:22")
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                Ok(Outcome::store(
                    "escape",
                    &json!({"vars": vars, "args": args, "socket": format!("{socket:?}")}),
                ))
            }
            "huge-output" => Ok(Outcome::store("blob", &json!("x".repeat(2 << 20)))),
            "stdout-flood" => {
                for _ in 0..100_000 {
                    println!("flooding stdout with a line that goes on for a while");
                }
                Ok(Outcome::default())
            }
            "undeclared" => {
                data::set("stolen", &json!(true))?;
                Ok(Outcome::default())
            }
            "undeclared-read" => Ok(Outcome::store("peek", &json!(data::get("secret")))),
            "template" => {
                let template = config.template.unwrap_or_default();
                let text = templates::render(&template)?;
                Ok(Outcome::store("rendered", &json!(text.len())))
            }
            "sleep" => {
                // A WASI sleep: the guest runs no code while it waits.
                std::thread::sleep(std::time::Duration::from_secs(20));
                Ok(Outcome::default())
            }
            "ok" => Ok(Outcome::store("answer", &json!(42))),
            other => Err(ActionError::InvalidConfig(format!(
                "unknown attack {other:?}"
            ))),
        }
    }
}

fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Recursion with small frames: exhausts the wasm call stack.
#[allow(unconditional_recursion)] // the point of the attack
fn recurse(depth: u64) -> u64 {
    let below = recurse(std::hint::black_box(depth + 1));
    std::hint::black_box(below) + 1
}

/// Recursion with arrays on the guest's own stack in linear memory: the
/// shadow stack runs out before the wasm call stack does.
#[allow(unconditional_recursion)] // the point of the attack
fn recurse_with_frames(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth; 64]);
    1 + recurse_with_frames(pad[depth as usize % 64] + 1) + std::hint::black_box(0)
}

flowhost_sdk::export_action!(Hostile);
