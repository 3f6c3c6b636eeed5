//! Compiles the built-in plugins (`plugins/`) to wasm32-wasip2 components and
//! embeds them, so the `flowhost` binary runs on its own.

fn main() {
    flowhost_guest_build::build_and_index("../plugins");
}
