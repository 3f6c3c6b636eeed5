//! Flow versions and the sandbox on PostgreSQL. Publishing locks the
//! production row, so of two publishes made on the same version only the
//! first wins, whichever node they reach.

use async_trait::async_trait;

use super::{PostgresBackend, big, count, from_json, records, to_json, unbig};
use crate::model::version::{FlowVersion, Sandbox, VersionOrigin};
use crate::storage::{NewVersion, ProductionMoved, StorageError, Versions};

#[async_trait]
impl Versions for PostgresBackend {
    async fn production(&self) -> Result<Option<FlowVersion>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT v.record FROM flow_versions v \
                 JOIN flow_production p ON p.number = v.number",
                &[],
            )
            .await?;
        row.map(|row| from_json(row.get(0), "flow version"))
            .transpose()
    }

    async fn flow_version(&self, number: u64) -> Result<Option<FlowVersion>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT record FROM flow_versions WHERE number = $1",
                &[&big(number)],
            )
            .await?;
        row.map(|row| from_json(row.get(0), "flow version"))
            .transpose()
    }

    async fn flow_versions(&self, limit: usize) -> Result<Vec<FlowVersion>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM flow_versions ORDER BY number DESC LIMIT $1",
                &[&count(limit)],
            )
            .await?;
        records(&rows, "flow version")
    }

    async fn publish(
        &self,
        new: NewVersion,
    ) -> Result<Result<FlowVersion, ProductionMoved>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one("SELECT number FROM flow_production FOR UPDATE", &[])
            .await?;
        let current = unbig(row.get(0));
        if current != new.expected_production {
            return Ok(Err(ProductionMoved {
                expected: new.expected_production,
                current,
            }));
        }
        let row = tx
            .query_one("SELECT coalesce(max(number), 0) FROM flow_versions", &[])
            .await?;
        let rebase_sandbox = new.rebase_sandbox;
        let version = new.numbered(unbig(row.get(0)) + 1);
        let number = big(version.number);
        tx.execute(
            "INSERT INTO flow_versions (number, record) VALUES ($1, $2)",
            &[&number, &to_json(&version)],
        )
        .await?;
        tx.execute("UPDATE flow_production SET number = $1", &[&number])
            .await?;
        if rebase_sandbox {
            let row = tx
                .query_opt("SELECT record FROM sandbox FOR UPDATE", &[])
                .await?;
            if let Some(row) = row {
                let mut sandbox: Sandbox = from_json(row.get(0), "sandbox")?;
                sandbox.based_on = version.number;
                tx.execute("UPDATE sandbox SET record = $1", &[&to_json(&sandbox)])
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Ok(version))
    }

    async fn sandbox(&self) -> Result<Option<Sandbox>, StorageError> {
        let client = self.client().await?;
        let row = client.query_opt("SELECT record FROM sandbox", &[]).await?;
        row.map(|row| from_json(row.get(0), "sandbox")).transpose()
    }

    async fn put_sandbox(&self, sandbox: Sandbox) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO sandbox (record) VALUES ($1) \
                 ON CONFLICT (only_row) DO UPDATE SET record = EXCLUDED.record",
                &[&to_json(&sandbox)],
            )
            .await?;
        Ok(())
    }

    async fn last_file_import(&self) -> Result<Option<String>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT record FROM flow_versions ORDER BY number DESC", &[])
            .await?;
        for row in rows {
            let version: FlowVersion = from_json(row.get(0), "flow version")?;
            if let VersionOrigin::File { sha256, .. } = version.origin {
                return Ok(Some(sha256));
            }
        }
        Ok(None)
    }
}
