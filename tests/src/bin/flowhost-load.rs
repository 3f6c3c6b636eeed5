//! `flowhost-load`: drives a real `flowhost serve` with signed Instagram
//! webhooks and reports throughput, latencies, CPU per message, memory and
//! disk, and every reply missing or doubled. In the same invocation it
//! measures the ceiling: a minimal axum service that checks the same
//! signatures and makes the one Send API call a reply needs, nothing else;
//! flowhost's figures are also given as ratios of it.
//!
//!   cargo build --release -p flowhost -p flowhost-tests
//!   target/release/flowhost-load --conversations 500 --messages 10 --connections 64

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::{Args, Parser, Subcommand};
use flowhost::storage::postgres::cluster::LocalCluster;
use flowhost_tests::stress::{
    Channel, DriveReport, Scenario, StandIns, drive_over, post_until_acknowledged,
};
use serde_json::{Value, json};

/// The servers' admin token: it also reads `/metrics`.
const ADMIN_TOKEN: &str = "load-test-admin-token-0123456789abcdef";

#[derive(Parser)]
#[command(name = "flowhost-load", about = "Load and measure a flowhost server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Sub {
    /// (internal) the ceiling service, run as its own process.
    Ceiling {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        graph: String,
        #[arg(long)]
        accounts: usize,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Customers, each writing --messages texts one after another.
    #[arg(long, default_value_t = 500)]
    conversations: usize,
    #[arg(long, default_value_t = 10)]
    messages: usize,
    /// Instagram accounts the customers are spread over.
    #[arg(long, default_value_t = 40)]
    accounts: usize,
    /// Closed loop: this many connections, each posting as soon as the
    /// previous delivery is acknowledged.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Open loop instead: this many messages per second, whatever the answers.
    #[arg(long)]
    rate: Option<u64>,
    /// Every n-th conversation calls a slow service (0: none).
    #[arg(long, default_value_t = 0)]
    slow_every: usize,
    /// How long the slow service takes.
    #[arg(long, default_value_t = 200)]
    slow_ms: u64,
    /// The flowhost binary (default: beside this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Skip the ceiling run.
    #[arg(long)]
    no_ceiling: bool,
    /// Give up on missing replies after this long.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// The server's `storage.cache_mb` (sled's page cache; default: the
    /// server's own default).
    #[arg(long)]
    cache_mb: Option<u64>,
    /// Keep the server's state in a private PostgreSQL cluster started for
    /// the run (its processes' CPU is reported beside the server's).
    #[arg(long)]
    postgres: bool,
    /// With --postgres: this many server processes sharing the database,
    /// the webhooks spread over them (CPU and memory are their sums).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Sub::Ceiling {
            listen,
            graph,
            accounts,
        }) => runtime.block_on(ceiling(listen, graph, accounts)),
        None => runtime.block_on(run(cli.run)),
    }
}

/// The figures of one measured run.
struct Measured {
    name: &'static str,
    messages: usize,
    messages_per_conversation: usize,
    seconds: f64,
    ack: Vec<Duration>,
    reply: Vec<Duration>,
    /// Replies to conversations that never call the slow service.
    reply_fast: Vec<Duration>,
    cpu_seconds: f64,
    /// The database server's CPU over the same time (PostgreSQL runs).
    db_cpu_seconds: Option<f64>,
    peak_rss_kib: u64,
    /// Resident memory when the server was ready, and once every reply
    /// had come (every conversation idle again).
    rss_before_kib: u64,
    rss_after_kib: u64,
    data_bytes: u64,
    /// Bytes the server (and the database server) wrote to disk meanwhile.
    disk_written_bytes: u64,
    /// Group commits over the run, summed over the nodes: flushes and the
    /// durable writes they answered (`None`: the server reports none).
    commits: Option<Commits>,
    missing: usize,
    duplicated: usize,
    /// Conversations whose replies all came, not in the order written.
    out_of_order: usize,
    /// Deliveries refused or failed (each retried).
    errors: usize,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let scenario = Scenario {
        channel: Channel::Instagram,
        accounts: args.accounts,
        conversations: args.conversations,
        messages: args.messages,
        slow_every: args.slow_every,
        run: "load".into(),
        settle_by_echo_seconds: None,
    };
    let flowhost = measure_flowhost(&args, &scenario).await?;
    let ceiling = if args.no_ceiling {
        None
    } else {
        Some(measure_ceiling(&args, &scenario).await?)
    };
    let mut rows = vec![report_json(&flowhost)];
    print_row(&flowhost);
    if let Some(ceiling) = &ceiling {
        print_row(ceiling);
        rows.push(report_json(ceiling));
        let throughput = (flowhost.messages as f64 / flowhost.seconds)
            / (ceiling.messages as f64 / ceiling.seconds);
        let cpu = (flowhost.cpu_seconds / flowhost.messages as f64)
            / (ceiling.cpu_seconds / ceiling.messages as f64);
        println!("flowhost / ceiling: throughput {throughput:.2}x, CPU per message {cpu:.2}x");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&json!({"runs": rows}))?)?;
    }
    if flowhost.missing + flowhost.duplicated + flowhost.out_of_order > 0 {
        anyhow::bail!(
            "flowhost: {} replies missing, {} duplicated, {} conversations out of order",
            flowhost.missing,
            flowhost.duplicated,
            flowhost.out_of_order
        );
    }
    Ok(())
}

async fn measure_flowhost(args: &RunArgs, scenario: &Scenario) -> anyhow::Result<Measured> {
    let (stand_ins, api) = StandIns::start().await;
    stand_ins.slow_for(Duration::from_millis(args.slow_ms));
    let dir = tempfile::tempdir()?;
    let mut config = json!({
        "data_dir": dir.path().join("data"),
        "flow": write(dir.path(), "flow.yaml", &scenario.flow_yaml(&api, &api))?,
        "admin_token": ADMIN_TOKEN,
        "runtime": {"max_concurrent_calls": 96},
        "intake": {"max_turns": 96},
        "plugins": {"request": {
            "http": {"allowed_hosts": ["127.0.0.1"], "allow_private_networks": true}}},
    });
    if let Some(cache_mb) = args.cache_mb {
        config["storage"] = json!({ "cache_mb": cache_mb });
    }
    let cluster = if args.postgres {
        let cluster = LocalCluster::start()?;
        let url = cluster.create_database("flowhost").await?;
        config["storage"]["postgres"] = json!({ "url": url, "max_connections": 32 });
        Some(cluster)
    } else {
        None
    };
    if args.nodes > 1 && cluster.is_none() {
        anyhow::bail!("--nodes needs --postgres: nodes share a PostgreSQL database");
    }
    let bin = args
        .server_bin
        .clone()
        .unwrap_or_else(|| beside_me("flowhost"));
    let (mut children, mut ports) = (Vec::new(), Vec::new());
    for node in 0..args.nodes.max(1) {
        let port = free_port();
        config["listen"] = json!(format!("127.0.0.1:{port}"));
        config["data_dir"] = json!(dir.path().join(format!("data{node}")));
        if cluster.is_some() {
            config["storage"]["postgres"]["node"] = json!(format!("load-{node}"));
        }
        let path = write(
            dir.path(),
            &format!("flowhost{node}.json"),
            &config.to_string(),
        )?;
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&path)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", bin.display()))?;
        children.push(child);
        ports.push(port);
    }
    let data = match &cluster {
        Some(cluster) => cluster.data_dir(),
        None => dir.path().join("data0").join("db"),
    };
    let server = Server {
        children,
        ports,
        data: Some(data),
        database_pid: cluster.as_ref().map(LocalCluster::server_pid),
    };
    measure("flowhost", args, scenario, server, &stand_ins).await
}

/// The servers under measure (one, or several nodes), and where their
/// state and database are.
struct Server {
    children: Vec<Child>,
    ports: Vec<u16>,
    data: Option<PathBuf>,
    /// The PostgreSQL postmaster, whose processes' CPU counts too.
    database_pid: Option<u32>,
}

async fn measure_ceiling(args: &RunArgs, scenario: &Scenario) -> anyhow::Result<Measured> {
    let (stand_ins, api) = StandIns::start().await;
    let port = free_port();
    let child = Command::new(std::env::current_exe()?)
        .args(["ceiling", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--graph",
            &api,
            "--accounts",
            &scenario.accounts.to_string(),
        ])
        .spawn()?;
    let plain = Scenario {
        slow_every: 0,
        ..scenario.clone()
    };
    let server = Server {
        children: vec![child],
        ports: vec![port],
        data: None,
        database_pid: None,
    };
    measure("ceiling", args, &plain, server, &stand_ins).await
}

/// Drives the server and measures it, then stops it.
async fn measure(
    name: &'static str,
    args: &RunArgs,
    scenario: &Scenario,
    server: Server,
    stand_ins: &StandIns,
) -> anyhow::Result<Measured> {
    let Server {
        mut children,
        ports,
        data,
        database_pid,
    } = server;
    let bases: Vec<String> = ports
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .collect();
    for base in &bases {
        wait_ready(base).await?;
    }
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    let commits_before = commits(&bases).await;
    let cpu_before = sum(&pids, cpu_seconds)?;
    let db_cpu_before = database_pid.map(tree_cpu_seconds);
    let written_before = sum(&pids, disk_written)? + database_pid.map_or(0, tree_disk_written);
    let rss_before_kib = sum(&pids, |pid| rss_kib(pid, "VmRSS:"))?;
    let total = scenario.conversations * scenario.messages;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let started = Instant::now();
    let report = match args.rate {
        None => {
            let customers = (0..scenario.conversations).collect();
            drive_over(&bases, scenario, customers, args.connections, deadline).await
        }
        Some(rate) => open_loop(&bases, scenario, rate, deadline).await,
    };
    stand_ins.wait_for_replies(total, deadline).await;
    let seconds = started.elapsed().as_secs_f64();
    // A moment for anything sent twice to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = sum(&pids, cpu_seconds)? - cpu_before;
    let db_cpu = database_pid
        .zip(db_cpu_before)
        .map(|(db, before)| tree_cpu_seconds(db) - before);
    let peak_rss_kib = sum(&pids, |pid| rss_kib(pid, "VmHWM:"))?;
    let rss_after_kib = sum(&pids, |pid| rss_kib(pid, "VmRSS:"))?;
    let data_bytes = data.as_deref().map(du).unwrap_or(0);
    let written = sum(&pids, disk_written)? + database_pid.map_or(0, tree_disk_written);
    let commits = commits(&bases)
        .await
        .zip(commits_before)
        .map(|(after, before)| after.since(&before))
        .filter(|c| c.flushes > 0);
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }

    let replies = stand_ins.replies();
    let arrivals = stand_ins.arrivals();
    let mut reply_latencies = Vec::new();
    let mut reply_fast = Vec::new();
    for ((c, i), sent) in &report.sent_at {
        if let Some(at) = arrivals.get(&scenario.customer(*c)).and_then(|a| a.get(*i)) {
            let latency = at.saturating_duration_since(*sent);
            reply_latencies.push(latency);
            if !scenario.is_slow(*c) {
                reply_fast.push(latency);
            }
        }
    }
    let received: usize = replies.values().map(Vec::len).sum();
    let out_of_order = (0..scenario.conversations)
        .filter(|c| {
            let got = replies
                .get(&scenario.customer(*c))
                .cloned()
                .unwrap_or_default();
            let mut expected = scenario.expected(*c);
            let mut sorted = got.clone();
            sorted.sort();
            expected.sort();
            sorted == expected && got != scenario.expected(*c)
        })
        .count();
    Ok(Measured {
        name,
        messages: total,
        messages_per_conversation: scenario.messages,
        seconds,
        ack: report.ack_latencies,
        reply: reply_latencies,
        reply_fast,
        cpu_seconds: cpu,
        db_cpu_seconds: db_cpu,
        peak_rss_kib,
        rss_before_kib,
        rss_after_kib,
        data_bytes,
        disk_written_bytes: written.saturating_sub(written_before),
        commits,
        missing: total.saturating_sub(received),
        duplicated: received.saturating_sub(total),
        out_of_order,
        errors: report.refused,
    })
}

/// Posts message k at k / rate seconds: customer k mod N, its next message.
async fn open_loop(
    bases: &[String],
    scenario: &Scenario,
    rate: u64,
    deadline: Instant,
) -> DriveReport {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let total = scenario.conversations * scenario.messages;
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(4096));
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..total {
        tokio::time::sleep_until(start + gap * k as u32).await;
        let (c, i) = (k % scenario.conversations, k / scenario.conversations);
        let delivery = scenario.delivery(c, i);
        let (client, base) = (client.clone(), bases[k % bases.len()].clone());
        let permit = in_flight.clone().acquire_owned().await.expect("open");
        tasks.spawn(async move {
            let _permit = permit;
            let mut report = DriveReport::default();
            report.sent_at.insert((c, i), Instant::now());
            post_until_acknowledged(&client, &base, &delivery, &mut report, deadline).await;
            report
        });
    }
    let mut total_report = DriveReport::default();
    while let Some(Ok(report)) = tasks.join_next().await {
        total_report.acknowledged += report.acknowledged;
        total_report.refused += report.refused;
        total_report.ack_latencies.extend(report.ack_latencies);
        total_report.sent_at.extend(report.sent_at);
    }
    total_report
}

// ---- the ceiling service ----

struct CeilingState {
    graph: String,
    secrets: Vec<(String, Vec<u8>)>,
    client: reqwest::Client,
}

async fn ceiling(
    listen: std::net::SocketAddr,
    graph: String,
    accounts: usize,
) -> anyhow::Result<()> {
    let scenario = Scenario {
        channel: Channel::Instagram,
        accounts,
        conversations: 0,
        messages: 0,
        slow_every: 0,
        run: String::new(),
        settle_by_echo_seconds: None,
    };
    let secrets = (0..accounts)
        .map(|a| (scenario.ig_id(a), format!("secret-{a}").into_bytes()))
        .collect();
    let state = Arc::new(CeilingState {
        graph,
        secrets,
        client: reqwest::Client::new(),
    });
    let router = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(|| async { "ready" }))
        .route("/webhooks/instagram", axum::routing::post(ceiling_webhook))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

async fn ceiling_webhook(
    State(state): State<Arc<CeilingState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let entry = &event["entry"][0];
    let account = entry["id"].as_str().unwrap_or_default();
    let Some((_, secret)) = state.secrets.iter().find(|(id, _)| id == account) else {
        return StatusCode::FORBIDDEN;
    };
    let header = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if flowhost::channels::instagram::signature::verify(secret, &body, header).is_err() {
        return StatusCode::FORBIDDEN;
    }
    let item = &entry["messaging"][0];
    let reply = json!({"recipient": {"id": item["sender"]["id"]},
        "message": {"text": format!("got {}", item["message"]["text"].as_str().unwrap_or_default())}});
    let url = format!("{}/v23.0/{account}/messages", state.graph);
    let client = state.client.clone();
    // Answered at once, the reply sent after: as flowhost does.
    tokio::spawn(async move {
        let _ = client.post(url).json(&reply).send().await;
    });
    StatusCode::OK
}

// ---- measuring processes ----

/// CPU seconds of `pid` and its children (a PostgreSQL server's backends
/// and workers), counting those that ended too (their time is in the
/// parent's `cutime`/`cstime`).
fn tree_cpu_seconds(pid: u32) -> f64 {
    let children: f64 = children(pid).map(|child| stat_ticks(child, 11..13)).sum();
    (stat_ticks(pid, 11..15) + children) / 100.0
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> impl Iterator<Item = u32> {
    let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    entries
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(move |child| stat_field(*child, 1).is_some_and(|ppid| ppid == pid as f64))
}

/// Bytes `pid` has caused to be written to disk (`write_bytes` of
/// `/proc/PID/io`: what reached the block layer, page by page, so a flush
/// that rewrites a partly filled page counts the whole page again).
fn disk_written(pid: u32) -> anyhow::Result<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    let line = io.lines().find(|l| l.starts_with("write_bytes:"));
    Ok(line
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0))
}

/// The same for a database server and its living children.
fn tree_disk_written(pid: u32) -> u64 {
    std::iter::once(pid)
        .chain(children(pid))
        .filter_map(|p| disk_written(p).ok())
        .sum()
}

/// The sum of `/proc/PID/stat` fields in `range` (counted after the name).
fn stat_ticks(pid: u32, range: std::ops::Range<usize>) -> f64 {
    range.filter_map(|i| stat_field(pid, i)).sum()
}

fn stat_field(pid: u32, index: usize) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(index)?.parse().ok()
}

/// `figure` of every process in `pids`, added up.
fn sum<T: std::iter::Sum<T>>(
    pids: &[u32],
    figure: impl Fn(u32) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    pids.iter().map(|pid| figure(*pid)).sum()
}

fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// A memory figure of `/proc/PID/status` (`VmHWM:` the peak resident
/// size, `VmRSS:` the current one), in KiB.
fn rss_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or("");
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

fn du(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn beside_me(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

async fn wait_ready(base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
            && r.status() == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{base} did not become ready")
}

/// A server's group-commit counters.
#[derive(Clone, Copy)]
struct Commits {
    flushes: u64,
    durable_writes: u64,
    /// Round trips to the storage thread (0 where the store has none).
    requests: u64,
}

impl Commits {
    fn since(&self, before: &Commits) -> Commits {
        Commits {
            flushes: self.flushes.saturating_sub(before.flushes),
            durable_writes: self.durable_writes.saturating_sub(before.durable_writes),
            requests: self.requests.saturating_sub(before.requests),
        }
    }
}

/// The group-commit counters of every node from its `/metrics`, summed;
/// `None` if a node does not report them (the ceiling has no metrics).
async fn commits(bases: &[String]) -> Option<Commits> {
    let mut total = Commits {
        flushes: 0,
        durable_writes: 0,
        requests: 0,
    };
    for base in bases {
        let text = reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .text()
            .await
            .ok()?;
        total.flushes += metric(&text, "flowhost_storage_flushes_total")?;
        total.durable_writes += metric(&text, "flowhost_storage_durable_writes_total")?;
        total.requests += metric(&text, "flowhost_storage_requests_total").unwrap_or(0);
    }
    Some(total)
}

/// The value of an unlabelled metric in Prometheus's text format.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
}

// ---- the report ----

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

fn latencies(values: &[Duration]) -> [f64; 3] {
    let mut sorted = values.to_vec();
    sorted.sort();
    [0.50, 0.99, 0.999].map(|p| percentile(&sorted, p))
}

fn report_json(m: &Measured) -> Value {
    let [a50, a99, a999] = latencies(&m.ack);
    let [r50, r99, r999] = latencies(&m.reply);
    let [f50, f99, f999] = latencies(&m.reply_fast);
    json!({
        "name": m.name,
        "messages": m.messages,
        "seconds": m.seconds,
        "messages_per_second": m.messages as f64 / m.seconds,
        "ack_ms": {"p50": a50, "p99": a99, "p99_9": a999},
        "reply_ms": {"p50": r50, "p99": r99, "p99_9": r999},
        "reply_ms_without_slow_service": {"p50": f50, "p99": f99, "p99_9": f999},
        "cpu_us_per_message": m.cpu_seconds * 1e6 / m.messages as f64,
        "database_cpu_us_per_message": m.db_cpu_seconds.map(|s| s * 1e6 / m.messages as f64),
        "peak_rss_kib": m.peak_rss_kib,
        "rss_before_kib": m.rss_before_kib,
        "rss_after_kib": m.rss_after_kib,
        "rss_growth_bytes_per_conversation": idle_bytes_per_conversation(m),
        "data_bytes": m.data_bytes,
        "data_bytes_per_message": m.data_bytes as f64 / m.messages as f64,
        "disk_written_bytes_per_message": m.disk_written_bytes as f64 / m.messages as f64,
        "flushes_per_message": m.commits.map(|c| c.flushes as f64 / m.messages as f64),
        "durable_writes_per_flush": m.commits.map(|c| c.durable_writes as f64 / c.flushes as f64),
        "storage_requests_per_message": m.commits.map(|c| c.requests as f64 / m.messages as f64),
        "errors": m.errors,
        "missing": m.missing,
        "duplicated": m.duplicated,
        "out_of_order": m.out_of_order,
    })
}

/// What the run left resident, per conversation it made: an upper bound
/// on the RAM an idle conversation costs.
fn idle_bytes_per_conversation(m: &Measured) -> f64 {
    let conversations = m.messages.max(1) as f64 / m.messages_per_conversation.max(1) as f64;
    m.rss_after_kib.saturating_sub(m.rss_before_kib) as f64 * 1024.0 / conversations
}

fn print_row(m: &Measured) {
    let r = report_json(m);
    if m.reply_fast.len() < m.reply.len() {
        println!(
            "{:<9} replies to conversations that never call the slow service: p50/p99/p99.9 {:.1}/{:.1}/{:.1} ms",
            m.name,
            r["reply_ms_without_slow_service"]["p50"]
                .as_f64()
                .unwrap_or(f64::NAN),
            r["reply_ms_without_slow_service"]["p99"]
                .as_f64()
                .unwrap_or(f64::NAN),
            r["reply_ms_without_slow_service"]["p99_9"]
                .as_f64()
                .unwrap_or(f64::NAN),
        );
    }
    println!(
        "{:<9} {:>6} msgs {:>8.0} msg/s | ack p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms | reply p50/p99/p99.9 {:.1}/{:.1}/{:.1} ms | CPU {:.0} µs/msg{} | peak RSS {} MiB | RSS after {} MiB ({:.0} B/conversation) | data {:.0} B/msg, written {:.0} B/msg{} | errors {} missing {} duplicated {} out of order {}",
        m.name,
        m.messages,
        r["messages_per_second"].as_f64().unwrap_or(0.0),
        r["ack_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
        r["ack_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
        r["ack_ms"]["p99_9"].as_f64().unwrap_or(f64::NAN),
        r["reply_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
        r["reply_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
        r["reply_ms"]["p99_9"].as_f64().unwrap_or(f64::NAN),
        r["cpu_us_per_message"].as_f64().unwrap_or(0.0),
        r["database_cpu_us_per_message"]
            .as_f64()
            .map(|db| format!(" + database {db:.0} µs/msg"))
            .unwrap_or_default(),
        m.peak_rss_kib / 1024,
        m.rss_after_kib / 1024,
        r["rss_growth_bytes_per_conversation"]
            .as_f64()
            .unwrap_or(0.0),
        r["data_bytes_per_message"].as_f64().unwrap_or(0.0),
        r["disk_written_bytes_per_message"].as_f64().unwrap_or(0.0),
        m.commits
            .map(|c| format!(
                " | flushes {:.2}/msg, {:.1} writes each, {:.1} storage requests/msg",
                c.flushes as f64 / m.messages as f64,
                c.durable_writes as f64 / c.flushes as f64,
                c.requests as f64 / m.messages as f64
            ))
            .unwrap_or_default(),
        m.errors,
        m.missing,
        m.duplicated,
        m.out_of_order,
    );
}
