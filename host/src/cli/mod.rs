//! The command-line tools behind `flowhost validate`, `chat`, `diagram`,
//! `schema`, `plugin` (with `plugin new`, the scaffold), `admin` and
//! `storage` (moving a deployment between stores).

pub mod admin;
pub mod chat;
pub mod flows;
pub mod plugin_test;
pub mod plugins;
pub mod scaffold;
pub mod storage;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use crate::flow::{CompiledFlow, Flow, PluginCatalog, Report};
use crate::plugin::{PluginRuntime, PluginSettings, RuntimeConfig};
use crate::registry::PluginRegistry;

/// The runtime and plugins the tools use: built-ins plus an optional
/// directory, with settings from an optional server configuration. The
/// tools cache compiled plugins only where the configuration names a cache
/// (`runtime.cache_dir`), never in a data directory relative to wherever
/// they happen to run.
pub async fn load_plugins(
    plugins_dir: Option<&Path>,
    settings: &BTreeMap<String, PluginSettings>,
    cache_dir: Option<&Path>,
) -> anyhow::Result<(PluginRuntime, PluginRegistry)> {
    let runtime = PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 8,
        cache_dir: cache_dir.map(Path::to_path_buf),
        ..RuntimeConfig::default()
    })?;
    let registry = PluginRegistry::load(&runtime, plugins_dir, settings).await?;
    registry.check_settings(settings, &Default::default())?;
    Ok((runtime, registry))
}

/// Reads and validates a flow file. `Err` carries the printable report.
pub fn read_flow(
    path: &Path,
    registry: &PluginRegistry,
) -> anyhow::Result<Result<(CompiledFlow, Report), Report>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let flow: Flow = match crate::flow::parse_all(&text) {
        Ok(flow) => flow,
        Err(issues) => {
            return Ok(Err(Report {
                errors: issues,
                warnings: Vec::new(),
            }));
        }
    };
    let positions = crate::flow::Positions::of(&text);
    let located = |mut report: Report| {
        positions.annotate(&mut report.errors);
        positions.annotate(&mut report.warnings);
        report
    };
    Ok(
        match crate::flow::compile(flow, &PluginCatalog::from_registry(registry)) {
            Ok((compiled, warnings)) => Ok((
                compiled,
                located(Report {
                    errors: Vec::new(),
                    warnings,
                }),
            )),
            Err(report) => Err(located(report)),
        },
    )
}
