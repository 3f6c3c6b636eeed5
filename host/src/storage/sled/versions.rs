//! Flow versions and the sandbox, in their own tree:
//! `v` + number (u64 big-endian) -> `FlowVersion`, `production` -> the
//! number in effect, `sandbox` -> `Sandbox`. Publishing writes the new
//! version and moves `production` in one atomic batch, on the storage
//! thread (one request at a time), so two applies cannot both win.

use super::store::{SledStore, from_json, to_json};
use async_trait::async_trait;

use super::SledBackend;
use crate::model::version::{FlowVersion, Sandbox, VersionOrigin};
use crate::storage::{NewVersion, ProductionMoved, StorageError, Versions};

const PRODUCTION: &[u8] = b"production";
const SANDBOX: &[u8] = b"sandbox";
const VERSION: &[u8] = b"v";

fn version_key(number: u64) -> Vec<u8> {
    [VERSION, &number.to_be_bytes()].concat()
}

impl SledStore {
    fn production_number(&self) -> Result<u64, StorageError> {
        Ok(self
            .versions
            .get(PRODUCTION)?
            .map(|bytes| u64::from_be_bytes(bytes.as_ref().try_into().unwrap_or([0; 8])))
            .unwrap_or(0))
    }

    pub fn flow_version(&self, number: u64) -> Result<Option<FlowVersion>, StorageError> {
        self.versions
            .get(version_key(number))?
            .map(|bytes| from_json(&bytes, "flow version"))
            .transpose()
    }

    fn publish(
        &self,
        new: NewVersion,
    ) -> Result<Result<FlowVersion, ProductionMoved>, StorageError> {
        let current = self.production_number()?;
        if current != new.expected_production {
            return Ok(Err(ProductionMoved {
                expected: new.expected_production,
                current,
            }));
        }
        let last = self
            .versions
            .scan_prefix(VERSION)
            .keys()
            .next_back()
            .transpose()?
            .map(|key| u64::from_be_bytes(key[VERSION.len()..].try_into().unwrap_or([0; 8])))
            .unwrap_or(0);
        let rebase_sandbox = new.rebase_sandbox;
        let version = new.numbered(last + 1);
        let mut batch = sled::Batch::default();
        batch.insert(version_key(version.number), to_json(&version));
        batch.insert(PRODUCTION, &version.number.to_be_bytes());
        if rebase_sandbox && let Some(mut sandbox) = self.sandbox()? {
            sandbox.based_on = version.number;
            batch.insert(SANDBOX, to_json(&sandbox));
        }
        self.versions.apply_batch(batch)?;
        Ok(Ok(version))
    }

    fn sandbox(&self) -> Result<Option<Sandbox>, StorageError> {
        self.versions
            .get(SANDBOX)?
            .map(|bytes| from_json(&bytes, "sandbox"))
            .transpose()
    }

    /// Versions, newest first, at most `limit`.
    fn flow_versions(&self, limit: usize) -> Result<Vec<FlowVersion>, StorageError> {
        self.versions
            .scan_prefix(VERSION)
            .values()
            .rev()
            .take(limit)
            .map(|bytes| from_json(&bytes?, "flow version"))
            .collect()
    }

    /// The hash of the configuration file last imported, if any.
    fn last_file_import(&self) -> Result<Option<String>, StorageError> {
        for bytes in self.versions.scan_prefix(VERSION).values().rev() {
            let version: FlowVersion = from_json(&bytes?, "flow version")?;
            if let VersionOrigin::File { sha256, .. } = version.origin {
                return Ok(Some(sha256));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Versions for SledBackend {
    async fn production(&self) -> Result<Option<FlowVersion>, StorageError> {
        self.thread
            .read(|db| match db.production_number()? {
                0 => Ok(None),
                number => db.flow_version(number),
            })
            .await
    }

    async fn flow_version(&self, number: u64) -> Result<Option<FlowVersion>, StorageError> {
        self.thread.read(move |db| db.flow_version(number)).await
    }

    async fn flow_versions(&self, limit: usize) -> Result<Vec<FlowVersion>, StorageError> {
        self.thread.read(move |db| db.flow_versions(limit)).await
    }

    async fn publish(
        &self,
        new: NewVersion,
    ) -> Result<Result<FlowVersion, ProductionMoved>, StorageError> {
        self.thread.write(move |db| db.publish(new)).await
    }

    async fn sandbox(&self) -> Result<Option<Sandbox>, StorageError> {
        self.thread.read(|db| db.sandbox()).await
    }

    async fn put_sandbox(&self, sandbox: Sandbox) -> Result<(), StorageError> {
        self.thread
            .write(move |db| {
                db.versions.insert(SANDBOX, to_json(&sandbox))?;
                Ok(())
            })
            .await
    }

    async fn last_file_import(&self) -> Result<Option<String>, StorageError> {
        self.thread.read(|db| db.last_file_import()).await
    }
}
