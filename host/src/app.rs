//! Start-up and shutdown: opens storage, starts the plugin runtime, loads
//! the plugins and the flow, and serves HTTP until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actions::ActionRunner;
use crate::channels::instagram::login::MetaLogin;
use crate::config::ServerConfig;
use crate::connections::Connections;
use crate::connections::seal::SecretBox;
use crate::engine::clock::SystemClock;
use crate::engine::{Engine, EngineSettings};
use crate::intake::{Intake, IntakeLimits};
use crate::outbox::OutboxSender;
use crate::plugin::{PluginRuntime, RuntimeConfig};
use crate::publishing::uploads::Uploads;
use crate::publishing::{PublishError, Publisher};
use crate::registry::{PluginRegistry, PluginSet};
use crate::routing::queues::Router;
use crate::server::agents::AgentDesk;
use crate::server::webhooks::{ConnexeaseAccounts, InstagramAccounts};
use crate::server::{self, AppState};
use crate::storage::Storage;

/// Opens everything an action needs.
pub async fn start_runner(config: &ServerConfig) -> anyhow::Result<ActionRunner> {
    create_private_dir(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let storage = Storage::open_configured(&config.data_dir.join("db"), &config.storage)
        .await
        .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
    let runtime = PluginRuntime::new(&RuntimeConfig {
        cache_dir: Some(config.plugin_cache_dir()),
        ..config.runtime.clone()
    })?;
    let registry =
        PluginRegistry::load(&runtime, config.plugins_dir.as_deref(), &config.plugins).await?;
    let uploaded = storage
        .uploads()
        .await?
        .into_iter()
        .map(|u| u.name)
        .collect();
    registry.check_settings(&config.plugins, &uploaded)?;
    Ok(ActionRunner {
        runtime: Arc::new(runtime),
        registry: Arc::new(registry),
        storage,
    })
}

/// The admin token: from the configuration, else `FLOWHOST_ADMIN_TOKEN`,
/// else the one generated on first start into `<data_dir>/admin-token`.
/// A token shorter than [`MIN_ADMIN_TOKEN_BYTES`] is refused wherever it
/// comes from.
pub fn admin_token(config: &ServerConfig) -> anyhow::Result<(String, Option<PathBuf>)> {
    if let Some(token) = config.admin_token.clone() {
        return Ok((
            long_enough(token, "admin_token in the configuration")?,
            None,
        ));
    }
    if let Ok(token) = std::env::var("FLOWHOST_ADMIN_TOKEN") {
        return Ok((long_enough(token, "FLOWHOST_ADMIN_TOKEN")?, None));
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = long_enough(token.trim().to_string(), &path.display().to_string())?;
        return Ok((token, Some(path)));
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    Ok((token, Some(path)))
}

/// Shortest admin token accepted: 32 bytes, as `openssl rand -hex 16` gives.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

fn long_enough(token: String, source: &str) -> anyhow::Result<String> {
    if token.len() < MIN_ADMIN_TOKEN_BYTES {
        anyhow::bail!(
            "{source}: the admin token is {} bytes; use at least {MIN_ADMIN_TOKEN_BYTES} (for example the output of `openssl rand -hex 32`), or leave it unset to have one generated",
            token.len()
        );
    }
    Ok(token)
}

/// Creates the data directory readable by this user only (conversations
/// are personal data); warns when an existing one is open to others.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                "the data directory has mode {mode:o}; other users can read conversations (chmod 700 it)"
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// What a loaded flow adds to the server; all empty without one.
#[derive(Default)]
struct FlowParts {
    engine: Option<Arc<Engine>>,
    intake: Option<Arc<Intake>>,
    instagram: InstagramAccounts,
    connexease: ConnexeaseAccounts,
    desk: Option<Arc<AgentDesk>>,
    sends: Option<Arc<crate::outbox::health::SendHealth>>,
}

/// The flow to serve and its version: the configuration's flow file,
/// imported as a new version when it changed since it was last imported;
/// else production as stored (what admins applied last).
async fn production_flow(
    config: &ServerConfig,
    publisher: &Publisher,
) -> anyhow::Result<Option<(u64, crate::flow::CompiledFlow, PluginSet)>> {
    if let Some(path) = &config.flow {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the flow {}", path.display()))?;
        let shown = path.display().to_string();
        match publisher.import_file(&shown, &text).await {
            Ok(_) => {}
            Err(PublishError::Invalid(issues)) => {
                anyhow::bail!("{shown} has errors:\n{}", listed(&issues))
            }
            Err(other) => return Err(other).with_context(|| format!("importing {shown}")),
        }
    }
    let Some(version) = publisher.production().await? else {
        return Ok(None);
    };
    let number = version.number;
    let (compiled, plugins, warnings) =
        publisher
            .compile_version(&version)
            .await
            .map_err(|issues| {
                anyhow::anyhow!(
                    "flow version {number} does not validate with the plugins loaded now:\n{}",
                    listed(&issues)
                )
            })?;
    for warning in warnings {
        tracing::warn!("flow version {number}: {warning}");
    }
    let unusable = crate::flow::secrets::unusable_secrets(&compiled.flow);
    if !unusable.is_empty() {
        anyhow::bail!(
            "flow version {number}: accounts cannot work with the secrets this process has:\n  {}",
            unusable.join("\n  ")
        );
    }
    tracing::info!("serving flow version {number} ({})", version.comment);
    Ok(Some((number, compiled, plugins)))
}

fn listed(issues: &[crate::flow::Issue]) -> String {
    issues
        .iter()
        .map(|issue| format!("error: {issue}\n"))
        .collect()
}

/// The connected Instagram accounts, with Meta's login when the
/// configuration names an app (its secret must resolve).
async fn open_connections(
    config: &ServerConfig,
    addr: SocketAddr,
    storage: &Storage,
) -> anyhow::Result<Connections> {
    // Without a Meta app nothing is sealed: no key file is made for it.
    let sealer = SecretBox::load(
        config.secrets_key_file.as_deref(),
        &config.data_dir.join("secrets.key"),
        config.instagram_login.is_some(),
    )?;
    let login = match &config.instagram_login {
        None => None,
        Some(settings) => {
            if settings.app_id.is_empty() {
                anyhow::bail!("instagram_login.app_id is not set");
            }
            let secret = crate::flow::model::resolve_secret(&settings.app_secret).context(
                "instagram_login.app_secret is not set (or its environment variable is unset or empty)",
            )?;
            let public = config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}"));
            let redirect = settings.redirect_uri.clone().unwrap_or_else(|| {
                format!(
                    "{}{}",
                    public.trim_end_matches('/'),
                    server::INSTAGRAM_CALLBACK_PATH
                )
            });
            Some(MetaLogin::new(settings.clone(), secret, redirect))
        }
    };
    Ok(Connections::open(storage.clone(), sealer, login, Arc::new(SystemClock)).await?)
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub storage: Storage,
    pub engine: Option<Arc<Engine>>,
    stop: watch::Sender<bool>,
    http: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    ready: Arc<AtomicBool>,
    shutdown_timeout: Duration,
}

/// Starts the server: plugins, the flow (if configured), the intake worker,
/// the timer loop, the outbox sender and HTTP on `config.listen`.
pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
    let runner = start_runner(&config).await?;
    let (token, token_file) = admin_token(&config)?;
    match token_file {
        Some(path) => tracing::info!("admin API token is in {}", path.display()),
        None => tracing::info!("admin API token taken from the configuration"),
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    runner.storage.advertise(advertised_url(&config, addr));
    let (stop, stopped) = watch::channel(false);
    let mut workers = Vec::new();
    let connections = Arc::new(open_connections(&config, addr, &runner.storage).await?);
    workers.push(tokio::spawn(
        connections.clone().run_refresher(stopped.clone()),
    ));

    let uploads = Arc::new(Uploads::new(
        runner.runtime.clone(),
        runner.registry.clone(),
        runner.storage.clone(),
        config.plugins.clone(),
    ));
    let publisher = Publisher::new(
        runner.storage.clone(),
        uploads.clone(),
        None,
        Arc::new(SystemClock),
    );
    let parts = match production_flow(&config, &publisher).await? {
        None => {
            tracing::warn!(
                "no flow configured: webhooks are refused until one is (`flow:` in the configuration, or a version applied through the admin API and a restart)"
            );
            FlowParts::default()
        }
        Some((version, compiled, plugins)) => {
            let instagram = InstagramAccounts::from_flow(&compiled.flow);
            let connexease = ConnexeaseAccounts::from_flow(&compiled.flow);
            let sender = Arc::new(
                OutboxSender::new(
                    runner.storage.clone(),
                    Arc::new(SystemClock),
                    crate::outbox::endpoints(&compiled.flow),
                )
                .with_connections(connections.clone()),
            );
            let interrupted = sender.recover().await?;
            if interrupted > 0 {
                tracing::warn!("{interrupted} sends were interrupted by the last stop");
            }
            let send_health = sender.health();
            workers.push(tokio::spawn(sender.run(stopped.clone())));
            let settings = EngineSettings {
                callback_base_url: config
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{addr}")),
                ..EngineSettings::default()
            };
            let engine = Arc::new(
                Engine::new(
                    Arc::new(compiled),
                    runner.runtime.clone(),
                    runner.registry.clone(),
                    runner.storage.clone(),
                    Arc::new(SystemClock),
                    settings,
                )
                .with_flow_version(version, plugins)
                .with_uploads(uploads.clone()),
            );
            let limits = IntakeLimits {
                turns: config.intake.max_turns,
                held_events: config.intake.max_held_events,
            };
            let intake = Arc::new(Intake::new(engine.clone(), limits));
            workers.push(tokio::spawn(intake.clone().run(stopped.clone())));
            workers.push(tokio::spawn(engine.feed().clone().relay(stopped.clone())));
            let router = Router::new(engine.clone());
            workers.push(tokio::spawn(router.clone().run(stopped.clone())));
            workers.push(tokio::spawn(crate::analytics::prune_daily(
                runner.storage.clone(),
                config.analytics_retention_days,
                stopped.clone(),
            )));
            let desk = Arc::new(AgentDesk::new(engine.clone(), router, stopped.clone()));
            FlowParts {
                engine: Some(engine),
                intake: Some(intake),
                instagram,
                connexease,
                desk: Some(desk),
                sends: Some(send_health),
            }
        }
    };

    let publisher = Arc::new(Publisher::new(
        runner.storage.clone(),
        uploads,
        parts.engine.clone(),
        Arc::new(SystemClock),
    ));
    publisher.arm_sandbox().await?;
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        publisher,
        runner: runner.clone(),
        admin_token: token.into(),
        ready: ready.clone(),
        intake: parts.intake,
        instagram: Arc::new(parts.instagram),
        connexease: Arc::new(parts.connexease),
        desk: parts.desk,
        sends: parts.sends,
        metrics: crate::telemetry::install(),
        metrics_token: config.metrics_token.clone().map(Into::into),
        connections,
        trials: Arc::new(
            crate::publishing::trial::TrialChats::new(
                runner.runtime.clone(),
                runner.registry.clone(),
                config.data_dir.join("trials"),
            )
            .context("preparing the trial chats' folder")?,
        ),
        callback_parsing: Arc::new(tokio::sync::Semaphore::new(
            server::webhooks::CALLBACKS_PARSED_AT_ONCE,
        )),
    };
    let http = tokio::spawn(server::serve(
        listener,
        server::router(state),
        config.http,
        stopped.clone(),
    ));
    tracing::info!(
        "flowhost listening on http://{addr} with {} plugins",
        runner.registry.iter().count()
    );
    ready.store(true, Ordering::Relaxed);
    Ok(Server {
        addr,
        storage: runner.storage.clone(),
        engine: parts.engine,
        stop,
        http,
        workers,
        ready,
        shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
    })
}

impl Server {
    /// Stops taking requests and events, lets the requests and turns under
    /// way finish and stops retries, then flushes storage; all within the
    /// shutdown timeout, after which what is still running is abandoned
    /// (events stay in the inbox, an interrupted send is settled at the next
    /// start) and storage is flushed all the same.
    pub async fn stop(self) -> anyhow::Result<()> {
        tracing::info!(
            "shutting down: finishing work in flight (at most {:?})",
            self.shutdown_timeout
        );
        self.ready.store(false, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let mut tasks = self.workers;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = self.http.await {
                tracing::error!("HTTP server task: {e}");
            }
        }));
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let drained =
            tokio::time::timeout(self.shutdown_timeout, futures::future::join_all(tasks)).await;
        if drained.is_err() {
            tracing::warn!(
                "work still under way after {:?} is abandoned; it resumes at the next start",
                self.shutdown_timeout
            );
            aborts.iter().for_each(|task| task.abort());
        }
        self.storage.flush().await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let server = start(config).await?;
    shutdown.await;
    server.stop().await
}

/// Where the other nodes sharing the store reach this one: the configured
/// URL, else the listening address (the host's name for 0.0.0.0).
fn advertised_url(config: &ServerConfig, addr: SocketAddr) -> String {
    let configured = config.storage.postgres.as_ref();
    if let Some(url) = configured.and_then(|p| p.advertise_url.clone()) {
        return url.trim_end_matches('/').to_string();
    }
    if addr.ip().is_unspecified() {
        let host = crate::storage::postgres::host_name();
        return format!("http://{host}:{}", addr.port());
    }
    format!("http://{addr}")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 8, item 17: the data directory is private.
    #[cfg(unix)]
    #[test]
    fn the_data_directory_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/data");
        create_private_dir(&data).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    /// Issue 8, item 21: an empty or short admin token is refused.
    #[test]
    fn short_admin_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let with = |token: &str| ServerConfig {
            admin_token: Some(token.into()),
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        for short in ["", "admin", &"x".repeat(31)] {
            let err = admin_token(&with(short)).unwrap_err().to_string();
            assert!(err.contains("at least 32"), "{err}");
        }
        let long = "y".repeat(32);
        assert_eq!(admin_token(&with(&long)).unwrap().0, long);
        let generated = admin_token(&ServerConfig {
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        })
        .unwrap();
        assert!(generated.0.len() >= 32);
    }
}
