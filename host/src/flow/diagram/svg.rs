//! The diagram as an SVG image, drawn by flowhost (no layout engine, no
//! script): nodes in layers by their distance from where the drawing
//! starts, edges as straight arrows with their labels.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

use super::{Graph, Node, Shape, build, node_id};
use crate::flow::Flow;

const NODE_WIDTH: usize = 230;
const NODE_HEIGHT: usize = 44;
const COLUMN: usize = NODE_WIDTH + 40;
const ROW: usize = NODE_HEIGHT + 70;
const MARGIN: usize = 20;
/// Characters of a label shown in a node; the whole label is its tooltip.
const LABEL_CHARS: usize = 32;

/// The whole flow, every entity from its own layer.
pub fn svg(flow: &Flow) -> String {
    let graph = build(flow);
    let roots: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    draw(&graph, &roots)
}

/// The diagram tree of one entity (`section` as in the document, such as
/// `connectors`): it and everything it can lead to; `None` if the flow has
/// no such entity.
pub fn svg_of_entity(flow: &Flow, section: &str, name: &str) -> Option<String> {
    let kind = match section {
        "connectors" => "connector",
        "time_conditions" => "time_condition",
        "automessages" => "automessage",
        "decision_trees" => "tree",
        "chatbots" => "chatbot",
        "queues" => "queue",
        "terminates" => "terminate",
        _ => return None,
    };
    let graph = build(flow);
    let root = node_id(kind, name);
    graph
        .nodes
        .iter()
        .any(|n| n.id == root)
        .then(|| draw(&graph, &[root.as_str()]))
}

/// Layers by breadth-first distance from the first root that reaches a
/// node; nodes no root reaches are left out.
fn layers<'a>(graph: &'a Graph, roots: &[&'a str]) -> BTreeMap<usize, Vec<&'a str>> {
    let mut out: HashMap<&str, Vec<&str>> = HashMap::new();
    for edge in &graph.edges {
        out.entry(&edge.from).or_default().push(&edge.to);
    }
    let known: HashMap<&str, ()> = graph.nodes.iter().map(|n| (n.id.as_str(), ())).collect();
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let mut order = Vec::new();
    for root in roots {
        if depth.contains_key(root) {
            continue;
        }
        let mut queue = VecDeque::from([(*root, 0)]);
        depth.insert(root, 0);
        while let Some((id, d)) = queue.pop_front() {
            order.push(id);
            for next in out.get(id).into_iter().flatten() {
                if known.contains_key(next) && !depth.contains_key(next) {
                    depth.insert(next, d + 1);
                    queue.push_back((next, d + 1));
                }
            }
        }
    }
    let mut layers: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for id in order {
        layers.entry(depth[id]).or_default().push(id);
    }
    layers
}

fn draw(graph: &Graph, roots: &[&str]) -> String {
    let layers = layers(graph, roots);
    let mut at: HashMap<&str, (usize, usize)> = HashMap::new();
    for (row, ids) in &layers {
        for (column, id) in ids.iter().enumerate() {
            at.insert(id, (MARGIN + column * COLUMN, MARGIN + row * ROW));
        }
    }
    let widest = layers.values().map(Vec::len).max().unwrap_or(1);
    let width = 2 * MARGIN + widest * COLUMN;
    let height = 2 * MARGIN + layers.len().max(1) * ROW;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>"##
    );
    for edge in &graph.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) =
            (at.get(edge.from.as_str()), at.get(edge.to.as_str()))
        else {
            continue;
        };
        let (x1, y1) = (x1 + NODE_WIDTH / 2, y1 + NODE_HEIGHT);
        let (x2, y2) = (x2 + NODE_WIDTH / 2, y2);
        let _ = write!(
            svg,
            r##"<g class="edge"><line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#555" marker-end="url(#arrow)"/>"##
        );
        if !edge.label.is_empty() {
            // Nearer the target than the source, so the labels of edges
            // that fan out of one node do not pile up at its bottom.
            let (mx, my) = ((2 * x1 + 3 * x2) / 5, (2 * y1 + 3 * y2) / 5);
            let _ = write!(
                svg,
                r##"<text x="{mx}" y="{my}" text-anchor="middle" fill="#333" paint-order="stroke" stroke="#fff" stroke-width="3">{}</text>"##,
                escape(&shorten(&edge.label))
            );
        }
        svg.push_str("</g>");
    }
    for node in &graph.nodes {
        if let Some(&(x, y)) = at.get(node.id.as_str()) {
            draw_node(&mut svg, node, x, y);
        }
    }
    svg.push_str("</svg>");
    svg
}

fn draw_node(svg: &mut String, node: &Node, x: usize, y: usize) {
    let (fill, radius, border) = match node.shape {
        Shape::Start => ("#e3f2fd", 20, 1),
        Shape::Choice => ("#fff8e1", 4, 1),
        Shape::Step => ("#f1f8e9", 0, 1),
        Shape::End => ("#fce4ec", 0, 3),
    };
    let _ = write!(
        svg,
        r##"<g class="node" data-id="{}"><title>{}</title><rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="{radius}" fill="{fill}" stroke="#333" stroke-width="{border}"/><text x="{}" y="{}" text-anchor="middle">{}</text></g>"##,
        escape(&node.id),
        escape(&node.label),
        x + NODE_WIDTH / 2,
        y + NODE_HEIGHT / 2 + 4,
        escape(&shorten(&node.label)),
    );
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_string();
    }
    let mut short: String = label.chars().take(LABEL_CHARS - 1).collect();
    short.push('…');
    short
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        crate::flow::parse(
            r#"
connectors:
  dm: { title: "DMs <&>", account: ig, next: { decision_tree: menu } }
decision_trees:
  menu:
    start: hello
    decisions:
      hello:
        targets:
          - { when: button, title: Agent, go: { queue: support } }
          - { when: default, go: { terminate: bye } }
queues:
  support: { name: Support }
  unused: { name: Unused }
terminates:
  bye: { cause: done }
"#,
        )
        .unwrap()
    }

    #[test]
    fn an_entitys_tree_draws_what_it_leads_to_and_nothing_else() {
        let drawn = svg_of_entity(&flow(), "connectors", "dm").unwrap();
        assert!(drawn.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        for id in [
            "connector_dm",
            "tree_menu",
            "decision_menu__hello",
            "queue_support",
            "terminate_bye",
        ] {
            assert!(
                drawn.contains(&format!("data-id=\"{id}\"")),
                "{id} missing: {drawn}"
            );
        }
        assert!(!drawn.contains("queue_unused"), "{drawn}");
        assert!(drawn.contains("button: Agent"), "{drawn}");
        assert!(
            drawn.contains("DMs &lt;&amp;&gt;"),
            "labels are escaped: {drawn}"
        );
        assert_eq!(drawn.matches("<line").count(), 4, "{drawn}");
        assert!(svg_of_entity(&flow(), "connectors", "nope").is_none());
        assert!(svg(&flow()).contains("queue_unused"));
    }
}
