//! The crate's layering, checked from its source (docs/ARCHITECTURE.md, "Layers"):
//!
//! 0. `error`, `io` (generic I/O)
//! 1. the Engram library: `config`, `device`, `hashing`, `inject`, `inspect`, `memory`,
//!    `ops`, `precision`, `vocab`, `weights`
//! 2. the host models: `host::qwen3`, `host::lora`, `host::adapted`
//! 3. the study harness: `study::*`
//!
//! Every `crate::` / `super::` / `self::` path in `src/` (imports, qualified calls and doc
//! links alike) is resolved to the module it names. A path from a lower layer to a higher
//! one fails the test, and so does any cycle among the modules, even inside one layer.
//! The check reads text, so it runs in every feature set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of a node (`io`, `memory`, `host::qwen3`, `study::train`, ...).
fn layer(node: &str) -> usize {
    match node.split("::").next().unwrap() {
        "error" | "io" => 0,
        "host" => 2,
        "study" => 3,
        _ => 1,
    }
}

/// Modules that group sub-modules as nodes of their own (rather than being one node).
const SPLIT: [&str; 2] = ["host", "study"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let kind = entry.file_type().unwrap(); // a symlink is not followed
        if kind.is_dir() {
            rust_files(&path, out);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: src/study/train/trainer.rs -> [study, train, trainer];
/// a mod.rs is its folder's module.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The node a module path belongs to, given the sub-modules that exist under `host` and
/// `study` (anything else under them, e.g. a re-exported item, is the umbrella module).
fn node_of(path: &[String], subs: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    let first = path.first()?;
    if SPLIT.contains(&first.as_str())
        && let Some(second) = path.get(1).filter(|s| subs[first].contains(*s))
    {
        return Some(format!("{first}::{second}"));
    }
    Some(first.clone())
}

/// Leading segments (up to three) of every path in a `use` tree starting at `text`, e.g.
/// `{a::b, c::{d, e}}` -> [a, b], [c, d], [c, e].
fn use_tree(text: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut segs = prefix.clone();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            i += 1;
            loop {
                i += use_tree(&text[i..], segs.clone(), out);
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                match bytes.get(i) {
                    Some(b',') => {
                        i += 1;
                        let rest = text[i..].trim_start();
                        if rest.starts_with('}') {
                            i = text.len() - rest.len() + 1;
                            return i;
                        }
                    }
                    Some(b'}') => return i + 1,
                    _ => return i,
                }
            }
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i == start {
            out.push(segs);
            return i;
        }
        segs.push(text[start..i].to_string());
        if text[i..].starts_with("::") {
            i += 2;
        } else {
            out.push(segs);
            return i;
        }
    }
}

/// Every path a file names from the crate: (line, absolute module path).
fn crate_paths(text: &str, here: &[String]) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        // plain comments are not code; doc comments are (their links must resolve).
        let code = match line.trim_start() {
            l if l.starts_with("///") || l.starts_with("//!") => line,
            l if l.starts_with("//") => continue,
            _ => line,
        };
        for root in ["crate::", "super::", "self::"] {
            let mut from = 0;
            while let Some(at) = code[from..].find(root) {
                let at = from + at;
                from = at + root.len();
                let before = code[..at].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue; // e.g. `my_crate::`
                }
                let mut base: Vec<String> = match root {
                    "crate::" => vec![],
                    "self::" => here.to_vec(),
                    _ => here[..here.len().saturating_sub(1)].to_vec(),
                };
                // `super::super::`
                let mut rest = &code[from..];
                while root == "super::" && rest.starts_with("super::") {
                    base.pop();
                    rest = &rest["super::".len()..];
                }
                let mut paths = Vec::new();
                use_tree(rest, base, &mut paths);
                found.extend(paths.into_iter().map(|p| (n + 1, p)));
            }
        }
    }
    found
}

struct Graph {
    /// node -> target -> first place seen ("file:line")
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut subs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for split in SPLIT {
        let set = subs.entry(split.to_string()).or_default();
        for f in &files {
            let m = module_path(&src, f);
            if m.len() >= 2 && m[0] == split {
                set.insert(m[1].clone());
            }
        }
    }
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in &files {
        let here = module_path(&src, f);
        let Some(from) = node_of(&here, &subs) else {
            continue; // lib.rs: the crate root re-exports from every layer
        };
        let text = std::fs::read_to_string(f).unwrap();
        let is_mod = f.file_name().is_some_and(|n| n == "mod.rs");
        for (line, path) in crate_paths(&text, &here) {
            // An umbrella mod.rs re-exporting its own children is not a dependency on them.
            if is_mod && from == here.join("::") && path.starts_with(&here) {
                continue;
            }
            let Some(to) = node_of(&path, &subs) else {
                continue;
            };
            if to != from {
                let at = format!("{}:{line}", f.strip_prefix(&src).unwrap().display());
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert(at);
            }
        }
    }
    Graph { edges }
}

#[test]
fn imports_go_down_the_layers_only() {
    let g = graph();
    let mut bad = Vec::new();
    for (from, tos) in &g.edges {
        for (to, at) in tos {
            if layer(to) > layer(from) {
                bad.push(format!(
                    "{from} (layer {}) -> {to} (layer {}) at src/{at}",
                    layer(from),
                    layer(to)
                ));
            }
        }
    }
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
    // the check sees the real graph: the harness does use the host and the library
    assert!(g.edges["study::train"].contains_key("memory"));
    assert!(g.edges["host::qwen3"].contains_key("inject"));
}

#[test]
fn the_modules_form_no_cycle() {
    let g = graph();
    // depth-first search with an explicit path; a back edge is a cycle
    fn visit(
        node: &str,
        g: &Graph,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for to in g.edges.get(node).into_iter().flat_map(|t| t.keys()) {
            match state.get(to.as_str()).copied().unwrap_or(0) {
                1 => {
                    let i = stack.iter().position(|n| n == to).unwrap();
                    let mut cycle = stack[i..].to_vec();
                    cycle.push(to.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(to, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in g.edges.keys() {
        if state.get(node).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(node, &g, &mut state, &mut Vec::new())
        {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {} (src/{})", w[0], w[1], g.edges[&w[0]][&w[1]]))
                .collect();
            panic!("import cycle:\n{}", steps.join("\n"));
        }
    }
}

#[test]
fn the_path_reader_resolves_what_it_must() {
    let here: Vec<String> = ["study", "train", "trainer"].map(String::from).to_vec();
    let got = crate_paths(
        "use crate::{io::read_f32, memory::{GateMode, sparse}};\nuse super::loss::X;\n// crate::host::x\n/// [`y`](crate::host::lora::y)",
        &here,
    );
    let paths: Vec<String> = got
        .iter()
        .map(|(l, p)| format!("{l}:{}", p.join("::")))
        .collect();
    assert_eq!(
        paths,
        [
            "1:io::read_f32",
            "1:memory::GateMode",
            "1:memory::sparse",
            "2:study::train::loss::X",
            "4:host::lora::y",
        ]
    );
}
