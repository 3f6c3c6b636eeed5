//! Compiled components on disk, so a restart does not recompile.
//!
//! An artifact is keyed by the SHA-256 of the component's bytes and by the
//! engine's compatibility hash (wasmtime version and every setting that
//! affects code generation): an engine never loads code compiled for another
//! configuration. Files are written to a temporary name and renamed, so a
//! crash never leaves half an artifact under a valid key.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) struct ArtifactCache {
    dir: Option<PathBuf>,
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
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..12]);
        ArtifactCache { dir, engine_key }
    }

    /// Where the artifact for `bytes` lives (or would live).
    pub fn path_for(&self, bytes: &[u8]) -> Option<PathBuf> {
        let digest = hex::encode(Sha256::digest(bytes));
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{digest}-{}.cwasm", self.engine_key)))
    }

    /// The compiled component, from the cache when it holds a valid
    /// artifact, else compiled now and stored. Returns whether it was a hit.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> Result<(Component, bool), String> {
        let Some(path) = self.path_for(bytes) else {
            return Component::new(engine, bytes)
                .map(|c| (c, false))
                .map_err(|e| format!("{e:#}"));
        };
        if path.exists() {
            // SAFETY: the file was written by `store` below from
            // `Component::serialize` of this engine configuration (the key
            // says so); the cache directory belongs to flowhost's data dir.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "discarding unusable compiled artifact: {e:#}")
                }
            }
        }
        let component = Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?;
        if let Err(e) = store(&path, &component) {
            tracing::warn!(path = %path.display(), "could not cache the compiled component: {e}");
        }
        Ok((component, false))
    }
}

fn store(path: &Path, component: &Component) -> Result<(), String> {
    let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
    let dir = path.parent().ok_or("artifact path has no directory")?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&temp, path).map_err(|e| e.to_string())
}
