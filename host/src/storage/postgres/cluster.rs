//! A private PostgreSQL cluster for tests and local trials: `initdb` into a
//! temporary directory, `postgres` listening on a Unix socket there only
//! (no TCP port), stopped when the [`LocalCluster`] is dropped or the
//! process that started it dies.
//!
//! PostgreSQL refuses to run as root; run as root, the cluster runs as the
//! `postgres` user that Debian's package creates.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running private cluster.
pub struct LocalCluster {
    dir: tempfile::TempDir,
    server: Child,
    user: String,
}

impl LocalCluster {
    /// Creates and starts a cluster; waits until it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        let bin = server_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("flowhost-pg-").tempdir()?;
        let owner = run_as()?;
        if let Some((uid, gid, _)) = &owner {
            std::os::unix::fs::chown(dir.path(), Some(*uid), Some(*gid))?;
        }
        let user = owner
            .as_ref()
            .map_or("flowhost", |(_, _, name)| name.as_str());
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args([
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--username",
                user,
            ])
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null());
        as_owner(&mut initdb, &owner);
        let status = initdb.status().context("running initdb")?;
        if !status.success() {
            bail!("initdb failed ({status})");
        }
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=", "-c", "max_connections=200"])
            .args(["-c", "fsync=on", "-c", "shared_buffers=64MB"])
            .arg("-k")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_owner(&mut postgres, &owner);
        die_with_parent(&mut postgres);
        let server = spawn_from_lasting_thread(postgres)?;
        let cluster = LocalCluster {
            dir,
            server,
            user: user.to_string(),
        };
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// The postmaster's process id.
    pub fn server_pid(&self) -> u32 {
        self.server.id()
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The socket directory (the `host` of a connection string).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A connection string for `database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "host={} user={} dbname={database}",
            self.socket_dir().display(),
            self.user
        )
    }

    /// Creates an empty database and returns its connection string.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls).await?;
        let task = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name}"))?;
        drop(client);
        let _ = task.await;
        Ok(self.url(name))
    }

    /// Waits until the server says it accepts connections: the status
    /// line of `postmaster.pid` reads `ready` (the socket appears earlier,
    /// while the server still refuses connections as starting up).
    fn wait_ready(&self) -> anyhow::Result<()> {
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        let started = Instant::now();
        loop {
            let status = std::fs::read_to_string(&pid_file).unwrap_or_default();
            if status.lines().any(|line| line.trim() == "ready") {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("postgres was not ready within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown.
        let _ = Command::new("kill")
            .args(["-INT", &self.server.id().to_string()])
            .status();
        let _ = self.server.wait();
    }
}

/// Where `initdb` and `postgres` are: on the `PATH`, else Debian's place.
fn server_bin_dir() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists());
    if let Some(dir) = on_path {
        return Ok(dir);
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    debian.sort();
    debian
        .pop()
        .context("PostgreSQL's initdb and postgres were not found (install `postgresql`)")
}

/// The user to run the cluster as when we are root: `postgres`.
fn run_as() -> anyhow::Result<Option<(u32, u32, String)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let out = Command::new("id").args(["-u", "postgres"]).output()?;
    let uid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("running as root needs the `postgres` user")?;
    let out = Command::new("id").args(["-g", "postgres"]).output()?;
    let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok(Some((uid, gid, "postgres".into())))
}

fn as_owner(command: &mut Command, owner: &Option<(u32, u32, String)>) {
    if let Some((uid, gid, _)) = owner {
        command.uid(*uid).gid(*gid);
    }
}

/// Spawns `command` from a thread that lives as long as the process: the
/// parent-death signal below follows the thread that forked, and a test's
/// thread ends long before the process does.
fn spawn_from_lasting_thread(mut command: Command) -> anyhow::Result<Child> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("postgres-parent".into())
        .spawn(move || {
            let _ = send.send(command.spawn());
            loop {
                std::thread::park();
            }
        })?;
    receive.recv()?.context("starting postgres")
}

/// The server gets SIGINT when the thread that started it dies (with the
/// process), so a killed test run leaves no server behind.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
            Ok(())
        });
    }
}
