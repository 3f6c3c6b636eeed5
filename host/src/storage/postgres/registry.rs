//! Uploaded plugin components and connected Instagram accounts on
//! PostgreSQL: `uploads`, `instagram_connections`.

use async_trait::async_trait;

use super::{PostgresBackend, from_json, records, to_json};
use crate::model::connection::Connection;
use crate::model::version::UploadedPlugin;
use crate::storage::{Connections, StorageError, Uploads};

#[async_trait]
impl Uploads for PostgresBackend {
    async fn put_upload(
        &self,
        record: UploadedPlugin,
        bytes: Vec<u8>,
    ) -> Result<UploadedPlugin, StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO uploads (sha256, record, bytes) VALUES ($1, $2, $3) \
                 ON CONFLICT (sha256) DO NOTHING",
                &[&record.sha256, &to_json(&record), &bytes],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT record FROM uploads WHERE sha256 = $1",
                &[&record.sha256],
            )
            .await?;
        from_json(row.get(0), "uploaded plugin")
    }

    async fn upload_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT bytes FROM uploads WHERE sha256 = $1", &[&sha256])
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn uploads(&self) -> Result<Vec<UploadedPlugin>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT record FROM uploads ORDER BY sha256", &[])
            .await?;
        records(&rows, "uploaded plugin")
    }
}

#[async_trait]
impl Connections for PostgresBackend {
    async fn put_connection(
        &self,
        connection: Connection,
        sealed_token: String,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO instagram_connections (ig_user_id, record, sealed_token) \
                 VALUES ($1, $2, $3) ON CONFLICT (ig_user_id) DO UPDATE \
                 SET record = EXCLUDED.record, sealed_token = EXCLUDED.sealed_token",
                &[&connection.ig_user_id, &to_json(&connection), &sealed_token],
            )
            .await?;
        Ok(())
    }

    async fn connections(&self) -> Result<Vec<(Connection, String)>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record, sealed_token FROM instagram_connections ORDER BY ig_user_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((from_json(row.get(0), "instagram connection")?, row.get(1))))
            .collect()
    }

    async fn remove_connection(&self, ig_user_id: &str) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM instagram_connections WHERE ig_user_id = $1",
                &[&ig_user_id],
            )
            .await?;
        Ok(removed > 0)
    }
}
