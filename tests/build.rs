//! Compiles the hostile test guests (`tests/guests/`) to components, and
//! gives the tests a compiled-artifact cache directory inside the build.

fn main() {
    flowhost_guest_build::build_and_index("guests");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rustc-env=FLOWHOST_TEST_PLUGIN_CACHE={out_dir}/plugin-cache");
}
