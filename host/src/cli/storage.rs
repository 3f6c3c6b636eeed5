//! `flowhost storage export` and `import`: moving a deployment from one
//! store to another (see `storage::archive` for what moves).

use std::io::{BufReader, BufWriter};
use std::path::Path;

use anyhow::Context as _;

use crate::config::ServerConfig;
use crate::storage::Storage;
use crate::storage::archive::{self, Counts};

/// Writes the configured store's records to `out`, a new file only its
/// owner may read (it holds agents' token hashes and sealed tokens).
pub async fn export(config: &ServerConfig, out: &Path) -> anyhow::Result<()> {
    let storage = open(config).await?;
    let file = private_new_file(out)
        .with_context(|| format!("creating {} (it must not exist yet)", out.display()))?;
    let mut writer = BufWriter::new(file);
    let counts = archive::export(&*storage, &mut writer)
        .await
        .with_context(|| format!("exporting to {}", out.display()))?;
    storage.flush().await?;
    println!("exported to {}: {}", out.display(), summary(&counts));
    Ok(())
}

/// Writes the archive `file` into the configured store, which must be
/// empty.
pub async fn import(config: &ServerConfig, file: &Path) -> anyhow::Result<()> {
    let storage = open(config).await?;
    let open = || std::fs::File::open(file).map(BufReader::new);
    let counts = archive::import(&*storage, open)
        .await
        .with_context(|| format!("importing {}", file.display()))?;
    storage.flush().await?;
    println!("imported {}: {}", file.display(), summary(&counts));
    Ok(())
}

/// The store the configuration names, as the server would open it.
async fn open(config: &ServerConfig) -> anyhow::Result<Storage> {
    let dir = config.data_dir.join("db");
    Storage::open_configured(&dir, &config.storage)
        .await
        .with_context(|| match &config.storage.postgres {
            Some(_) => "opening the PostgreSQL store".to_string(),
            None => format!(
                "opening the store in {} (is a server running on it? stop it first)",
                dir.display()
            ),
        })
}

fn private_new_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn summary(counts: &Counts) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(kind, _)| !matches!(**kind, "header" | "end"))
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}
