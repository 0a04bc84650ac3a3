//! The plan as a picture: Graphviz DOT or Mermaid.

use std::fmt::Write;

use crate::plan::{Edge, NodeKind, Plan};

fn edge_label(edge: &Edge) -> String {
    let signals = edge.signals.to_string();
    match &edge.port {
        Some(port) => format!("{port}: {signals}"),
        None => signals,
    }
}

fn node_label(kind: &NodeKind) -> String {
    match kind {
        NodeKind::Source(s) => format!("source ({})", s.kind),
        NodeKind::Sink(s) => format!("sink ({})", s.kind),
        other => other.label().to_string(),
    }
}

pub fn dot(plan: &Plan) -> String {
    let mut out = String::from("digraph dbintel {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for (name, node) in &plan.nodes {
        let shape = match node.kind {
            NodeKind::Source(_) => "cylinder",
            NodeKind::Sink(_) => "cds",
            _ => "box",
        };
        let _ = writeln!(out, "  \"{name}\" [shape={shape}, label=\"{name}\\n{}\"];", node_label(&node.kind));
    }
    for edge in &plan.edges {
        let _ = writeln!(out, "  \"{}\" -> \"{}\" [label=\"{}\"];", edge.from, edge.to, edge_label(edge));
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    let ids: Vec<(&String, String)> = plan.nodes.keys().enumerate().map(|(i, name)| (name, format!("n{i}"))).collect();
    let id_of = |name: &str| ids.iter().find(|(n, _)| n.as_str() == name).map(|(_, id)| id.clone()).unwrap_or_default();
    for ((name, node), (_, id)) in plan.nodes.iter().zip(&ids) {
        let label = format!("{name}<br/>{}", node_label(&node.kind));
        let shaped = match node.kind {
            NodeKind::Source(_) => format!("{id}[(\"{label}\")]"),
            NodeKind::Sink(_) => format!("{id}[/\"{label}\"/]"),
            _ => format!("{id}[\"{label}\"]"),
        };
        let _ = writeln!(out, "  {shaped}");
    }
    for edge in &plan.edges {
        let _ = writeln!(out, "  {} -->|\"{}\"| {}", id_of(&edge.from), edge_label(edge), id_of(&edge.to));
    }
    out
}
