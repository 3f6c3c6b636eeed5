//! Compiles the hostile test guests (`tests/guests/`) to components.

fn main() {
    flowhost_guest_build::build_and_index("guests");
}
