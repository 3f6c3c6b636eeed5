//! Uploaded plugin components, in their own tree: `c` + SHA-256 (hex) ->
//! the component's bytes, `m` + SHA-256 -> its [`UploadedPlugin`] record.
//! Both are written in one batch, so a record never lacks its bytes.
//! Components are immutable: the same bytes always have the same key.

use super::store::{from_json, to_json};
use async_trait::async_trait;

use super::SledBackend;
use crate::model::version::UploadedPlugin;
use crate::storage::{StorageError, Uploads};

const COMPONENT: &[u8] = b"c";
const RECORD: &[u8] = b"m";

fn key(prefix: &[u8], sha256: &str) -> Vec<u8> {
    [prefix, sha256.as_bytes()].concat()
}

#[async_trait]
impl Uploads for SledBackend {
    async fn put_upload(
        &self,
        record: UploadedPlugin,
        bytes: Vec<u8>,
    ) -> Result<UploadedPlugin, StorageError> {
        self.thread
            .write(move |db| {
                if let Some(kept) = db.plugins.get(key(RECORD, &record.sha256))? {
                    return from_json(&kept, "uploaded plugin");
                }
                let mut batch = sled::Batch::default();
                batch.insert(key(COMPONENT, &record.sha256), bytes);
                batch.insert(key(RECORD, &record.sha256), to_json(&record));
                db.plugins.apply_batch(batch)?;
                Ok(record)
            })
            .await
    }

    async fn upload_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = key(COMPONENT, sha256);
        self.thread
            .read(move |db| Ok(db.plugins.get(key)?.map(|bytes| bytes.to_vec())))
            .await
    }

    async fn uploads(&self) -> Result<Vec<UploadedPlugin>, StorageError> {
        self.thread
            .read(|db| {
                db.plugins
                    .scan_prefix(RECORD)
                    .values()
                    .map(|bytes| from_json(&bytes?, "uploaded plugin"))
                    .collect()
            })
            .await
    }
}
