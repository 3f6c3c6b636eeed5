//! Connected Instagram accounts, in their own tree: `ig_user_id` -> the
//! [`Connection`] and its sealed token, as JSON. Written durably: a token
//! Meta has just issued must not be lost to a crash.

use serde::{Deserialize, Serialize};

use super::store::{from_json, to_json};
use async_trait::async_trait;

use super::SledBackend;
use crate::model::connection::Connection;
use crate::storage::{Connections, StorageError};

#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    connection: Connection,
    sealed_token: String,
}

#[async_trait]
impl Connections for SledBackend {
    async fn put_connection(
        &self,
        connection: Connection,
        sealed_token: String,
    ) -> Result<(), StorageError> {
        let key = connection.ig_user_id.clone();
        let stored = to_json(&Stored {
            connection,
            sealed_token,
        });
        self.thread
            .write(move |db| {
                db.connections.insert(key.as_bytes(), stored)?;
                Ok(())
            })
            .await
    }

    async fn connections(&self) -> Result<Vec<(Connection, String)>, StorageError> {
        self.thread
            .read(|db| {
                db.connections
                    .iter()
                    .values()
                    .map(|bytes| {
                        let stored: Stored = from_json(&bytes?, "instagram connection")?;
                        Ok((stored.connection, stored.sealed_token))
                    })
                    .collect()
            })
            .await
    }

    async fn remove_connection(&self, ig_user_id: &str) -> Result<bool, StorageError> {
        let key = ig_user_id.as_bytes().to_vec();
        self.thread
            .write(move |db| Ok(db.connections.remove(key)?.is_some()))
            .await
    }
}
