//! `docs/ARCHITECTURE.md` kept true by the code: the crate graph is generated from
//! the manifests (and checked against the dependencies each crate may have), the
//! sample trace names files and functions that exist, and its links resolve.
//! `X0_BLESS=1 cargo test --test architecture` rewrites the generated block.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every workspace package and the workspace packages it depends on (normal and build
/// dependencies; tests may reach further).
fn crate_graph() -> BTreeMap<String, BTreeSet<String>> {
    let workspace: toml::Table = toml::from_str(&read(&root().join("Cargo.toml"))).unwrap();
    let members = workspace["workspace"]["members"].as_array().unwrap();
    let dirs = members.iter().map(|m| root().join(m.as_str().unwrap())).chain([root()]);
    let mut graph = BTreeMap::new();
    for dir in dirs {
        let manifest: toml::Table = toml::from_str(&read(&dir.join("Cargo.toml"))).unwrap();
        let name = manifest["package"]["name"].as_str().unwrap().to_string();
        let mut deps = BTreeSet::new();
        let mut tables: Vec<&toml::Table> = ["dependencies", "build-dependencies"]
            .iter()
            .filter_map(|k| manifest.get(*k).and_then(|v| v.as_table()))
            .collect();
        if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
            for t in targets.values().filter_map(|t| t.as_table()) {
                tables.extend(t.get("dependencies").and_then(|v| v.as_table()));
            }
        }
        for t in tables {
            deps.extend(t.keys().filter(|k| k.starts_with("x0-")).cloned());
        }
        graph.insert(name, deps);
    }
    graph
}

/// What each crate may depend on (`shared/DESIGN.md`'s layout, plus the small crates
/// ARCHITECTURE.md explains: `netlink`, `kafka`, `ops`, `ui`), and by extension whatever
/// those may.
fn allowed() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        ("x0-schema", vec![]),
        ("x0-ebpf-common", vec![]),
        ("x0-probes", vec!["x0-ebpf-common"]),
        ("x0-netlink", vec![]),
        ("x0-ops", vec![]),
        ("x0-kafka", vec!["x0-schema"]),
        ("x0-ingest", vec!["x0-schema", "x0-ebpf-common", "x0-netlink", "x0-probes"]),
        ("x0-actuator", vec!["x0-schema", "x0-netlink"]),
        ("x0-training", vec!["x0-schema"]),
        ("x0-sql", vec!["x0-schema"]),
        ("x0-knowledge", vec!["x0-schema"]),
        ("x0-pipeline", vec!["x0-schema", "x0-kafka", "x0-training", "x0-knowledge", "x0-sql"]),
        ("x0-lab", vec!["x0-schema", "x0-kafka", "x0-ingest", "x0-actuator"]),
        ("x0-agent", vec!["x0-schema", "x0-kafka", "x0-ingest", "x0-actuator", "x0-netlink", "x0-ops"]),
        ("x0-ui", vec!["x0-pipeline", "x0-sql", "x0-schema"]),
        ("x0-harness", vec!["x0-pipeline", "x0-lab", "x0-training", "x0-ops", "x0-ui"]),
    ])
}

fn reachable(from: &str, allowed: &BTreeMap<&str, Vec<&str>>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = allowed.get(from).cloned().unwrap_or_default();
    while let Some(c) = todo.pop() {
        if seen.insert(c.to_string()) {
            todo.extend(allowed.get(c).cloned().unwrap_or_default());
        }
    }
    seen
}

#[test]
fn every_crate_depends_only_on_what_the_layout_allows() {
    let allowed = allowed();
    for (name, deps) in crate_graph() {
        if name == "x0tta6bl4" {
            continue;
        }
        assert!(allowed.contains_key(name.as_str()), "{name} is not in the layout; add it to allowed()");
        let may = reachable(&name, &allowed);
        let extra: Vec<_> = deps.difference(&may).collect();
        assert!(extra.is_empty(), "{name} depends on {extra:?}, outside what the layout allows ({may:?})");
    }
}

fn graph_block() -> String {
    let mut out = String::from("| crate | depends on |\n|---|---|\n");
    for (name, deps) in crate_graph() {
        let deps: Vec<_> = deps.iter().map(|d| format!("`{d}`")).collect();
        let deps = if deps.is_empty() { "(none of ours)".to_string() } else { deps.join(", ") };
        out.push_str(&format!("| `{name}` | {deps} |\n"));
    }
    out
}

#[test]
fn the_crate_graph_in_the_architecture_doc_is_the_manifests() {
    let path = root().join("docs/ARCHITECTURE.md");
    let doc = read(&path);
    let (begin, end) = ("<!-- crate-graph:begin -->\n", "<!-- crate-graph:end -->");
    let a = doc.find(begin).expect("begin marker") + begin.len();
    let b = doc.find(end).expect("end marker");
    let want = graph_block();
    if doc[a..b] != want {
        if std::env::var("X0_BLESS").as_deref() == Ok("1") {
            std::fs::write(&path, format!("{}{want}{}", &doc[..a], &doc[b..])).unwrap();
            return;
        }
        panic!("docs/ARCHITECTURE.md's crate graph is stale; rerun with X0_BLESS=1. Expected:\n{want}");
    }
}

/// `[`file`](../file) `function`` pairs of the "Follow one sample" section.
fn trace_steps(doc: &str) -> Vec<(String, String)> {
    let section = doc.split("## Follow one sample").nth(1).expect("a Follow one sample section");
    let section = section.split("\n## ").next().unwrap();
    let mut steps = Vec::new();
    let mut rest = section;
    while let Some(i) = rest.find("](../") {
        rest = &rest[i + 5..];
        let close = rest.find(')').unwrap();
        let file = rest[..close].to_string();
        let after = rest[close + 1..].trim_start();
        let func = after.strip_prefix('`').and_then(|a| a.split('`').next()).expect("a `function` after each file");
        steps.push((file, func.to_string()));
    }
    steps
}

#[test]
fn one_sample_is_traced_through_at_most_ten_code_files_that_hold_the_named_functions() {
    let doc = read(&root().join("docs/ARCHITECTURE.md"));
    let steps = trace_steps(&doc);
    assert!(steps.len() >= 8, "{steps:?}");
    let files: BTreeSet<_> = steps.iter().map(|(f, _)| f).collect();
    assert!(files.len() <= 10, "{} files: {files:?}", files.len());
    for (file, func) in &steps {
        let code = read(&root().join(file));
        assert!(code.contains(&format!("fn {func}(")), "{file} has no fn {func}");
    }
}

#[test]
fn the_docs_links_resolve() {
    for doc in ["docs/ARCHITECTURE.md", "README.md", "BENCHMARKS.md"] {
        let path = root().join(doc);
        let text = read(&path);
        let dir = path.parent().unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let target = &rest[..rest.find(')').unwrap()];
            if target.starts_with("http") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            assert!(dir.join(file).exists(), "{doc} links to {target}, which does not exist");
        }
    }
}
