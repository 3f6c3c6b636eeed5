//! Start-up and shutdown: opens storage, starts the plugin runtime, loads
//! the plugins, and serves HTTP until told to stop.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;

use crate::actions::ActionRunner;
use crate::config::ServerConfig;
use crate::plugin::{PluginRuntime, RuntimeConfig};
use crate::registry::PluginRegistry;
use crate::server::{self, AppState};
use crate::storage::Storage;

/// Opens everything an action needs.
pub async fn start_runner(config: &ServerConfig) -> anyhow::Result<ActionRunner> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let storage = Storage::open(&config.data_dir.join("db"))
        .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
    let runtime = PluginRuntime::new(&RuntimeConfig {
        cache_dir: Some(config.plugin_cache_dir()),
        ..config.runtime.clone()
    })?;
    let registry =
        PluginRegistry::load(&runtime, config.plugins_dir.as_deref(), &config.plugins).await?;
    Ok(ActionRunner {
        runtime: Arc::new(runtime),
        registry: Arc::new(registry),
        storage,
    })
}

/// The admin token: from the configuration, else `FLOWHOST_ADMIN_TOKEN`,
/// else the one generated on first start into `<data_dir>/admin-token`.
pub fn admin_token(config: &ServerConfig) -> anyhow::Result<(String, Option<PathBuf>)> {
    if let Some(token) = config.admin_token.clone().filter(|t| !t.is_empty()) {
        return Ok((token, None));
    }
    if let Ok(token) = std::env::var("FLOWHOST_ADMIN_TOKEN")
        && !token.is_empty()
    {
        return Ok((token, None));
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok((token.trim().to_string(), Some(path)));
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    Ok((token, Some(path)))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// Serves until `shutdown` resolves, then stops taking requests, lets the
/// ones in flight finish, and flushes the database.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let runner = start_runner(&config).await?;
    let (token, token_file) = admin_token(&config)?;
    match token_file {
        Some(path) => tracing::info!("admin API token is in {}", path.display()),
        None => tracing::info!("admin API token taken from the configuration"),
    }
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        runner: runner.clone(),
        admin_token: token.into(),
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    tracing::info!(
        "flowhost listening on http://{} with {} plugins",
        listener.local_addr()?,
        runner.registry.iter().count()
    );
    ready.store(true, Ordering::Relaxed);
    let stopping = ready.clone();
    axum::serve(listener, server::router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.store(false, Ordering::Relaxed);
            tracing::info!("shutting down: finishing requests in flight");
        })
        .await?;
    runner.storage.flush()?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
