//! Compiles the built-in plugins (`plugins/`) and the template sandbox
//! (`template-sandbox/`) to wasm32-wasip2 components and embeds them, so the
//! `flowhost` binary runs on its own.

fn main() {
    flowhost_guest_build::build_and_index("../plugins");
    let sandbox = flowhost_guest_build::build_workspace("template-sandbox")
        .and_then(|built| flowhost_guest_build::write_index_as(&built, "template_sandbox.rs"));
    if let Err(e) = sandbox {
        panic!("\n\n{e}\n\n");
    }
}
