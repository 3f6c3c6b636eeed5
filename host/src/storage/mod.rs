//! Durable state in sled. The rest of flowhost sees this narrow interface,
//! not sled, so a distributed store can take its place later.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::plugin::Effects;

/// A ticket as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: String,
    pub conversation_id: String,
    pub title: String,
    pub category: String,
    pub comment: String,
    pub created_at_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("storage: corrupt record under {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

/// The sled database and its trees.
#[derive(Clone)]
pub struct Storage {
    db: sled::Db,
    /// `conversation id \0 key` -> JSON value (the "save data" store).
    data: sled::Tree,
    /// ticket id -> `Ticket` as JSON.
    tickets: sled::Tree,
}

impl Storage {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let db = sled::Config::new().path(dir).open()?;
        Ok(Storage {
            data: db.open_tree("conversation_data")?,
            tickets: db.open_tree("tickets")?,
            db,
        })
    }

    /// A conversation's saved data.
    pub fn load_data(
        &self,
        conversation_id: &str,
    ) -> Result<BTreeMap<String, Value>, StorageError> {
        let prefix = data_prefix(conversation_id);
        let mut data = BTreeMap::new();
        for entry in self.data.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let value = serde_json::from_slice(&value).map_err(|e| StorageError::Corrupt {
                key: format!("{conversation_id}/{name}"),
                reason: e.to_string(),
            })?;
            data.insert(name, value);
        }
        Ok(data)
    }

    /// Applies what a successful plugin call changed, all or nothing:
    /// saved-data writes and new tickets land in one transaction.
    pub fn commit_effects(
        &self,
        conversation_id: &str,
        effects: &Effects,
    ) -> Result<(), StorageError> {
        if effects.data_changes.is_empty() && effects.tickets.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let tickets: Vec<(String, Vec<u8>)> = effects
            .tickets
            .iter()
            .map(|draft| {
                let ticket = Ticket {
                    id: draft.id.clone(),
                    conversation_id: conversation_id.to_string(),
                    title: draft.title.clone(),
                    category: draft.category.clone(),
                    comment: draft.comment.clone(),
                    created_at_ms: now,
                };
                (
                    ticket.id.clone(),
                    serde_json::to_vec(&ticket).expect("a ticket serialises"),
                )
            })
            .collect();
        let prefix = data_prefix(conversation_id);
        let result: Result<(), TransactionError<()>> =
            (&self.data, &self.tickets).transaction(|(data_tx, tickets_tx)| {
                for (key, change) in &effects.data_changes {
                    let mut full_key = prefix.clone();
                    full_key.extend_from_slice(key.as_bytes());
                    match change {
                        Some(value) => data_tx.insert(
                            full_key,
                            serde_json::to_vec(value).expect("JSON serialises"),
                        )?,
                        None => data_tx.remove(full_key)?,
                    };
                }
                for (id, ticket) in &tickets {
                    tickets_tx.insert(id.as_bytes(), ticket.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(StorageError::Sled(e)),
            Err(TransactionError::Abort(())) => unreachable!("the transaction never aborts"),
        }
    }

    pub fn ticket(&self, id: &str) -> Result<Option<Ticket>, StorageError> {
        self.tickets
            .get(id.as_bytes())?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
                    key: format!("ticket {id}"),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// Tickets of one conversation, oldest first.
    pub fn tickets_of(&self, conversation_id: &str) -> Result<Vec<Ticket>, StorageError> {
        let mut found = Vec::new();
        for entry in self.tickets.iter() {
            let (key, bytes) = entry?;
            let ticket: Ticket =
                serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
                    key: format!("ticket {}", String::from_utf8_lossy(&key)),
                    reason: e.to_string(),
                })?;
            if ticket.conversation_id == conversation_id {
                found.push(ticket);
            }
        }
        found.sort_by_key(|t| t.created_at_ms);
        Ok(found)
    }

    /// Writes everything to disk (before shutdown).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db.flush()?;
        Ok(())
    }
}

fn data_prefix(conversation_id: &str) -> Vec<u8> {
    let mut prefix = conversation_id.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
