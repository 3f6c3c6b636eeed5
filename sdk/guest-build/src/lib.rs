//! Build-script helper that compiles a workspace of flowhost plugins to
//! `wasm32-wasip2` components, so `cargo build` and `cargo test` make every
//! component from source with no manual step.
//!
//! It runs a nested `cargo build --release --target wasm32-wasip2` on the
//! guest workspace's own manifest and lock file, in a target directory of its
//! own (so the outer build's lock is never awaited), with the host's
//! `RUSTFLAGS` stripped. Call it from `build.rs`:
//!
//! ```no_run
//! let built = flowhost_guest_build::build_workspace("../plugins").unwrap();
//! for component in &built {
//!     println!("{} at {}", component.package, component.path.display());
//! }
//! ```

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest target. Its output is already a component: no adapter step.
pub const TARGET: &str = "wasm32-wasip2";

/// One component the nested build produced.
#[derive(Debug, Clone)]
pub struct Component {
    /// The package name, as in the guest's `Cargo.toml` (`send-message`).
    pub package: String,
    /// The `.wasm` file.
    pub path: PathBuf,
}

/// Why the guests could not be built.
#[derive(Debug)]
pub enum Error {
    /// The `wasm32-wasip2` standard library is not installed.
    TargetMissing,
    /// The nested cargo could not be started or failed.
    Cargo(String),
    /// Reading the workspace's metadata failed.
    Metadata(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TargetMissing => write!(
                f,
                "the Rust target {TARGET} is not installed; run `rustup target add {TARGET}` and build again"
            ),
            Error::Cargo(why) => write!(f, "building the plugin components failed: {why}"),
            Error::Metadata(why) => write!(f, "reading the guest workspace failed: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Builds every `cdylib` member of the guest workspace at `dir` (relative to
/// the calling crate's manifest directory) and returns the components.
///
/// Emits `cargo:rerun-if-changed` for the workspace, the SDK and the WIT
/// package, so the guests are rebuilt exactly when their sources change.
pub fn build_workspace(dir: impl AsRef<Path>) -> Result<Vec<Component>, Error> {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| Error::Cargo(e.to_string()))?);
    let repo_root = find_repo_root(&manifest_dir);
    let workspace = manifest_dir.join(dir.as_ref());
    let manifest = workspace.join("Cargo.toml");

    for watched in [
        workspace.clone(),
        repo_root.join("sdk/src"),
        repo_root.join("sdk/Cargo.toml"),
        repo_root.join("wit"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }

    ensure_target_installed()?;

    let target_dir = guest_target_dir(&repo_root);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--workspace")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    // The host's flags (coverage, sanitizers, target-cpu) mean nothing to a
    // wasm guest, and a profile override from the outer build would leak in.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
        {
            cmd.env_remove(key);
        }
    }
    let output = cmd
        .output()
        .map_err(|e| Error::Cargo(format!("running {cargo}: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `core`")
        {
            return Err(Error::TargetMissing);
        }
        return Err(Error::Cargo(stderr.into_owned()));
    }

    let out = target_dir.join(TARGET).join("release");
    let mut built = Vec::new();
    for (package, stem) in cdylib_members(&cargo, &manifest)? {
        let path = out.join(format!("{stem}.wasm"));
        if !path.exists() {
            return Err(Error::Cargo(format!("{} was not produced", path.display())));
        }
        built.push(Component { package, path });
    }
    Ok(built)
}

/// Writes `components.rs` into `OUT_DIR`: a `COMPONENTS` array of
/// `(package, bytes)` with each component embedded by `include_bytes!`, for
/// `include!(concat!(env!("OUT_DIR"), "/components.rs"))`.
pub fn write_index(components: &[Component]) -> Result<PathBuf, Error> {
    write_index_as(components, "components.rs")
}

/// [`write_index`] under another file name, for a build script that embeds
/// more than one guest workspace.
pub fn write_index_as(components: &[Component], file_name: &str) -> Result<PathBuf, Error> {
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| Error::Cargo(e.to_string()))?);
    let mut src =
        String::from("/// Components built from source by the build script: (package, bytes).\n");
    src.push_str("pub const COMPONENTS: &[(&str, &[u8])] = &[\n");
    for c in components {
        let path = c.path.display().to_string();
        src.push_str(&format!(
            "    ({:?}, include_bytes!({path:?})),\n",
            c.package
        ));
    }
    src.push_str("];\n");
    let path = out_dir.join(file_name);
    std::fs::write(&path, src).map_err(|e| Error::Cargo(e.to_string()))?;
    Ok(path)
}

/// Builds the workspace and writes the index, turning an error into a
/// build-script failure whose message says what to do.
pub fn build_and_index(dir: impl AsRef<Path>) -> Vec<Component> {
    match build_workspace(dir).and_then(|c| write_index(&c).map(|_| c)) {
        Ok(components) => components,
        Err(e) => {
            // A panic is how a build script reports a failure; the message is
            // the first thing the developer sees.
            panic!("\n\n{e}\n\n");
        }
    }
}

fn ensure_target_installed() -> Result<(), Error> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| Error::Cargo(format!("running rustc: {e}")))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        Ok(())
    } else {
        Err(Error::TargetMissing)
    }
}

/// The outer build's target directory plus `wasm-guests`; shared by every
/// guest workspace so their common dependencies compile once.
fn guest_target_dir(repo_root: &Path) -> PathBuf {
    let outer = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root.join("target"));
    let outer = if outer.is_absolute() {
        outer
    } else {
        repo_root.join(outer)
    };
    outer.join("wasm-guests")
}

/// The repository root: the directory holding `wit/` and `sdk/`.
fn find_repo_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|dir| dir.join("wit").is_dir() && dir.join("sdk").is_dir())
        .unwrap_or(start)
        .to_path_buf()
}

/// `(package, artifact stem)` of every member that builds a `cdylib`, from
/// `cargo metadata`.
fn cdylib_members(cargo: &str, manifest: &Path) -> Result<Vec<(String, String)>, Error> {
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .map_err(|e| Error::Metadata(e.to_string()))?;
    if !output.status.success() {
        return Err(Error::Metadata(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| Error::Metadata(e.to_string()))?;
    let mut members = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_cdylib = target["crate_types"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "cdylib"));
            if let (true, Some(package), Some(target)) =
                (is_cdylib, package["name"].as_str(), target["name"].as_str())
            {
                members.push((package.to_string(), target.replace('-', "_")));
            }
        }
    }
    members.sort();
    Ok(members)
}
