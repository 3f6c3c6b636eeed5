//! Compiled components on disk, so a restart does not recompile.
//!
//! An artifact is keyed by the SHA-256 of the component's bytes and by the
//! engine's compatibility hash (wasmtime version and every setting that
//! affects code generation): an engine never loads code compiled for another
//! configuration. Files are written to a temporary name and renamed, so a
//! crash never leaves half an artifact under a valid key.
//!
//! An artifact is native code that runs as soon as it is loaded, so it is
//! **authenticated** before it is: each file starts with an HMAC-SHA256 of
//! its name and contents under a key kept beside the cache
//! (`<cache>.key`, mode 0600), and a file whose MAC does not match is
//! compiled again. A cache directory or key that another user could write
//! is not used at all.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Bytes of the MAC at the start of every artifact file.
const MAC_BYTES: usize = 32;

pub(crate) struct ArtifactCache {
    /// The directory and the MAC key; `None` when there is no usable cache.
    store: Option<(PathBuf, [u8; 32])>,
    engine_key: String,
}

/// Feeds `Hash` output into SHA-256, for a key stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is used")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ArtifactCache {
    /// `dir` of `None` compiles every time (tests of compilation itself).
    /// A directory that cannot be made safe is reported and not used.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..12]);
        let store = dir.and_then(|dir| match open_store(&dir) {
            Ok(key) => Some((dir, key)),
            Err(why) => {
                tracing::warn!(dir = %dir.display(), "not using the compiled-plugin cache: {why}");
                None
            }
        });
        ArtifactCache { store, engine_key }
    }

    /// The artifact's file name for `bytes`.
    fn file_name(&self, bytes: &[u8]) -> String {
        let digest = hex::encode(Sha256::digest(bytes));
        format!("{digest}-{}.cwasm", self.engine_key)
    }

    /// The compiled component, from the cache when it holds an authentic
    /// artifact, else compiled now and stored. Returns whether it was a hit.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> Result<(Component, bool), String> {
        let Some((dir, key)) = &self.store else {
            return Component::new(engine, bytes)
                .map(|c| (c, false))
                .map_err(|e| format!("{e:#}"));
        };
        let name = self.file_name(bytes);
        let path = dir.join(&name);
        if let Ok(file) = std::fs::read(&path) {
            match authentic(key, &name, &file) {
                // SAFETY: the MAC proves this process's key wrote these bytes
                // under this name, from `Component::serialize` of an engine
                // with this configuration (the name says so); they are
                // deserialised from the buffer that was checked.
                Some(code) => match unsafe { Component::deserialize(engine, code) } {
                    Ok(component) => return Ok((component, true)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "discarding unusable compiled artifact: {e:#}")
                    }
                },
                None => {
                    tracing::warn!(path = %path.display(), "compiled artifact failed its authentication; compiling again")
                }
            }
        }
        let component = Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?;
        if let Err(e) = store(&path, key, &name, &component) {
            tracing::warn!(path = %path.display(), "could not cache the compiled component: {e}");
        }
        Ok((component, false))
    }
}

/// The artifact's code if `file` carries the right MAC for `name`.
fn authentic<'a>(key: &[u8; 32], name: &str, file: &'a [u8]) -> Option<&'a [u8]> {
    if file.len() < MAC_BYTES {
        return None;
    }
    let (tag, code) = file.split_at(MAC_BYTES);
    mac(key, name, code).verify_slice(tag).ok()?;
    Some(code)
}

fn mac(key: &[u8; 32], name: &str, code: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(name.as_bytes());
    mac.update(&[0]);
    mac.update(code);
    mac
}

fn store(path: &Path, key: &[u8; 32], name: &str, component: &Component) -> Result<(), String> {
    let code = component.serialize().map_err(|e| format!("{e:#}"))?;
    let tag = mac(key, name, &code).finalize().into_bytes();
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = private_file(&temp).map_err(|e| e.to_string())?;
    file.write_all(&tag)
        .and_then(|()| file.write_all(&code))
        .map_err(|e| e.to_string())?;
    std::fs::rename(&temp, path).map_err(|e| e.to_string())
}

/// Makes sure `dir` exists and only this user can write to it, and returns
/// the MAC key (created on first use).
fn open_store(dir: &Path) -> Result<[u8; 32], String> {
    private_dir(dir).map_err(|e| format!("creating it: {e}"))?;
    refuse_shared(dir)?;
    let key_path = dir.with_extension("key");
    if let Ok(text) = std::fs::read_to_string(&key_path) {
        refuse_shared(&key_path)?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key)
            .map_err(|_| format!("{} is not a 64-digit hex key", key_path.display()))?;
        return Ok(key);
    }
    // Two random v4 UUIDs (244 random bits from the OS) hashed into a key.
    let seed = format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let key: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
    let mut file = private_file(&key_path).map_err(|e| format!("creating its key: {e}"))?;
    file.write_all(hex::encode(key).as_bytes())
        .map_err(|e| format!("writing its key: {e}"))?;
    Ok(key)
}

#[cfg(unix)]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Refuses a path another user owns or could write to.
#[cfg(unix)]
fn refuse_shared(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!("{} belongs to another user", path.display()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by other users (mode {:o})",
            path.display(),
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_shared(_: &Path) -> Result<(), String> {
    Ok(())
}
