//! `flowhost validate`, `flowhost diagram` and `flowhost schema`.

use std::path::Path;

use anyhow::Context as _;

use super::{load_plugins, read_flow};
use crate::config::ServerConfig;

/// Prints every error and warning; `Ok(false)` when the flow has errors.
pub async fn validate(path: &Path, config: &ServerConfig) -> anyhow::Result<bool> {
    let (_runtime, registry) = load_plugins(
        config.plugins_dir.as_deref(),
        &config.plugins,
        config.runtime.cache_dir.as_deref(),
    )
    .await?;
    match read_flow(path, &registry)? {
        Ok((compiled, report)) => {
            print!("{report}");
            let flow = &compiled.flow;
            println!(
                "{}: valid ({} connectors, {} decision trees with {} decisions, {} automessages, {} time conditions, {} chatbots, {} queues, {} terminates; {} warnings)",
                path.display(),
                flow.connectors.len(),
                flow.decision_trees.len(),
                flow.decision_trees
                    .values()
                    .map(|t| t.decisions.len())
                    .sum::<usize>(),
                flow.automessages.len(),
                flow.time_conditions.len(),
                flow.chatbots.len(),
                flow.queues.len(),
                flow.terminates.len(),
                report.warnings.len(),
            );
            Ok(true)
        }
        Err(report) => {
            print!("{report}");
            println!("{}: {} errors", path.display(), report.errors.len());
            Ok(false)
        }
    }
}

/// Prints the flow as Mermaid or Graphviz DOT. Only parsing is needed: a
/// flow with errors can still be drawn, which helps to find them.
pub fn diagram(path: &Path, format: &str) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let flow = crate::flow::parse(&text).map_err(|issue| anyhow::anyhow!("{issue}"))?;
    match format {
        "mermaid" => print!("{}", crate::flow::diagram::mermaid(&flow)),
        "dot" => print!("{}", crate::flow::diagram::dot(&flow)),
        other => anyhow::bail!("unknown diagram format `{other}`: use mermaid or dot"),
    }
    Ok(())
}

/// Prints the JSON Schema of flow documents.
pub fn schema() -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::flow::json_schema())?
    );
    Ok(())
}
