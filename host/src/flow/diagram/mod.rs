//! The "diagram tree": a flow drawn as Mermaid or Graphviz DOT, or as an
//! SVG image by flowhost itself ([`svg`]), all from one walk of the flow's
//! edges, so admins can look at the routing instead of reading it.

mod svg;

use super::model::*;
pub use svg::{svg, svg_of_entity};

/// A node of the drawing: id, label, shape.
struct Node {
    id: String,
    label: String,
    shape: Shape,
}

enum Shape {
    Start,
    Choice,
    Step,
    End,
}

struct Edge {
    from: String,
    to: String,
    label: String,
}

struct Graph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

fn node_id(kind: &str, name: &str) -> String {
    let clean: String = format!("{kind}_{name}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    clean
}

fn destination_id(destination: &Destination, tree: &str) -> String {
    match destination {
        Destination::Decision(name) => node_id("decision", &format!("{tree}__{name}")),
        Destination::DecisionTree(name) => node_id("tree", name),
        other => {
            let (kind, name) = other.parts();
            node_id(kind, name)
        }
    }
}

fn build(flow: &Flow) -> Graph {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut edge = |from: &str, to: String, label: &str| {
        edges.push(Edge {
            from: from.to_string(),
            to,
            label: label.to_string(),
        })
    };

    for (key, connector) in &flow.connectors {
        let id = node_id("connector", key);
        nodes.push(Node {
            id: id.clone(),
            label: format!("connector: {}", connector.title),
            shape: Shape::Start,
        });
        edge(&id, destination_id(&connector.next, ""), "");
    }
    for (key, condition) in &flow.time_conditions {
        let id = node_id("time_condition", key);
        nodes.push(Node {
            id: id.clone(),
            label: format!(
                "time: {} ({})",
                non_empty(&condition.title, key),
                condition.time_group
            ),
            shape: Shape::Choice,
        });
        edge(&id, destination_id(&condition.open, ""), "open");
        edge(&id, destination_id(&condition.closed, ""), "closed");
    }
    for (key, automessage) in &flow.automessages {
        let id = node_id("automessage", key);
        let delays: Vec<String> = automessage
            .messages
            .iter()
            .map(|m| format!("{}s", m.delay_seconds))
            .collect();
        nodes.push(Node {
            id: id.clone(),
            label: format!(
                "automessage: {} [{}]",
                non_empty(&automessage.title, key),
                delays.join(", ")
            ),
            shape: Shape::Step,
        });
        edge(&id, destination_id(&automessage.next, ""), "then");
    }
    for (tree_key, tree) in &flow.decision_trees {
        let tree_id = node_id("tree", tree_key);
        nodes.push(Node {
            id: tree_id.clone(),
            label: format!("decision tree: {}", non_empty(&tree.title, tree_key)),
            shape: Shape::Start,
        });
        edge(
            &tree_id,
            destination_id(&Destination::Decision(tree.start.clone()), tree_key),
            "start",
        );
        for (decision_key, decision) in &tree.decisions {
            let id = destination_id(&Destination::Decision(decision_key.clone()), tree_key);
            let actions = count_actions(&decision.actions);
            let label = if actions > 0 {
                format!("{decision_key} ({actions} actions)")
            } else {
                decision_key.clone()
            };
            nodes.push(Node {
                id: id.clone(),
                label,
                shape: Shape::Choice,
            });
            for target in &decision.targets {
                let mut label = match target.when {
                    Answer::Immediately => "immediately".to_string(),
                    Answer::Button => format!(
                        "button: {}",
                        target
                            .title
                            .as_ref()
                            .map(|t| t.for_language(&flow.default_language))
                            .unwrap_or("")
                    ),
                    Answer::Pattern => {
                        format!("pattern: {}", target.pattern.as_deref().unwrap_or(""))
                    }
                    Answer::Similar => format!(
                        "similar: {}",
                        target
                            .words
                            .as_ref()
                            .map(|t| t.for_language(&flow.default_language))
                            .unwrap_or("")
                    ),
                    Answer::Default => "default".to_string(),
                    Answer::Jump => format!("jump: {}", target.id.as_deref().unwrap_or("")),
                };
                if target.default && target.when != Answer::Default {
                    label.push_str(" (default)");
                }
                edge(&id, destination_id(&target.go, tree_key), &label);
            }
        }
    }
    for (key, bot) in &flow.chatbots {
        let id = node_id("chatbot", key);
        nodes.push(Node {
            id: id.clone(),
            label: format!("chatbot: {}", bot.title),
            shape: Shape::Step,
        });
        edge(&id, destination_id(&bot.fallback, ""), "unavailable");
    }
    for (key, queue) in &flow.queues {
        let id = node_id("queue", key);
        nodes.push(Node {
            id: id.clone(),
            label: format!("queue: {}", non_empty(&queue.name, key)),
            shape: Shape::End,
        });
        if let Some(destination) = &queue.when_empty {
            edge(&id, destination_id(destination, ""), "no agent online");
        }
        if let Some(destination) = &queue.when_timeout {
            edge(&id, destination_id(destination, ""), "waited too long");
        }
    }
    for (key, terminate) in &flow.terminates {
        nodes.push(Node {
            id: node_id("terminate", key),
            label: format!(
                "terminate: {} ({})",
                non_empty(&terminate.title, key),
                terminate.cause
            ),
            shape: Shape::End,
        });
    }
    Graph { nodes, edges }
}

fn count_actions(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            Step::Action(_) => 1,
            Step::Condition(c) => count_actions(&c.then) + count_actions(&c.otherwise),
            Step::Loop(l) => count_actions(&l.body),
        })
        .sum()
}

fn non_empty<'a>(title: &'a str, key: &'a str) -> &'a str {
    if title.is_empty() { key } else { title }
}

fn escape(text: &str) -> String {
    text.replace('"', "'").replace(['\n', '\r'], " ")
}

/// The flow as a Mermaid flowchart.
pub fn mermaid(flow: &Flow) -> String {
    let graph = build(flow);
    let mut out = String::from("flowchart TD\n");
    for node in &graph.nodes {
        let label = escape(&node.label);
        let shaped = match node.shape {
            Shape::Start => format!("([\"{label}\"])"),
            Shape::Choice => format!("{{\"{label}\"}}"),
            Shape::Step => format!("[\"{label}\"]"),
            Shape::End => format!("[[\"{label}\"]]"),
        };
        out.push_str(&format!("    {}{shaped}\n", node.id));
    }
    for edge in &graph.edges {
        if edge.label.is_empty() {
            out.push_str(&format!("    {} --> {}\n", edge.from, edge.to));
        } else {
            out.push_str(&format!(
                "    {} -->|\"{}\"| {}\n",
                edge.from,
                escape(&edge.label),
                edge.to
            ));
        }
    }
    out
}

/// The flow as a Graphviz DOT digraph.
pub fn dot(flow: &Flow) -> String {
    let graph = build(flow);
    let mut out =
        String::from("digraph flow {\n    rankdir=TB;\n    node [fontname=\"Helvetica\"];\n");
    for node in &graph.nodes {
        let shape = match node.shape {
            Shape::Start => "oval",
            Shape::Choice => "diamond",
            Shape::Step => "box",
            Shape::End => "doubleoctagon",
        };
        out.push_str(&format!(
            "    {} [label=\"{}\", shape={shape}];\n",
            node.id,
            escape(&node.label)
        ));
    }
    for edge in &graph.edges {
        out.push_str(&format!(
            "    {} -> {} [label=\"{}\"];\n",
            edge.from,
            edge.to,
            escape(&edge.label)
        ));
    }
    out.push_str("}\n");
    out
}
