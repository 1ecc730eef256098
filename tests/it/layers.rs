//! The import graph drawn from the code itself: every `crate::` and
//! `super::` path in `src/` becomes an edge between modules. Layers only
//! look down (`ALLOWED`), and no two modules (at the second level: `core::
//! service`, `http::tus`, `client::live`...) import each other, directly or
//! round a loop. A file that grows past `MAX_LINES` without saying why at
//! its top fails too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import (besides itself). The layers, from
/// the bottom: the wire (`protocol`), the domain (`core`), its adapters
/// (`store`), the wiring (`server`), then the two faces: HTTP (`http`, with
/// the server functions in `api` and the page shell in `app`) and the page
/// (`page`, `ui`, `client`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("protocol", &[]),
    ("core", &["protocol"]),
    ("store", &["core", "protocol"]),
    ("server", &["store", "core", "protocol"]),
    ("api", &["server", "core", "protocol"]),
    ("page", &["protocol", "api"]),
    ("client", &["page", "protocol", "api"]),
    ("ui", &["client", "page", "protocol", "api"]),
    ("app", &["ui", "page", "protocol", "api"]),
    ("http", &["app", "api", "server", "core", "protocol"]),
];

/// Longest source file (lines before its tests) that needs no reason given.
const MAX_LINES: usize = 400;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/http/tus/create.rs` is
/// `["http", "tus", "create"]`, `src/http/tus/mod.rs` is `["http", "tus"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without its comments and its `#[cfg(test)]` module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file's code names: `crate::a::b` and `super::x`.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|p| !p.is_empty())
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().last().unwrap_or(' ');
        if before.is_ascii_alphanumeric() || before == '_' || before == ':' {
            continue; // `$crate::` in a macro, or another crate's path
        }
        found.push(ident(&code[i + "crate::".len()..]));
    }
    for (i, _) in code.match_indices("super::") {
        let before = code[..i].chars().last().unwrap_or(' ');
        if before == ':' || before.is_ascii_alphanumeric() {
            continue; // counted with the first `super::` of the chain
        }
        let mut base: Vec<String> = module.to_vec();
        let mut rest = &code[i..];
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        base.extend(ident(rest));
        found.push(base);
    }
    found
}

/// Every edge between distinct modules, cut to `depth` segments.
fn edges(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        if matches!(module[0].as_str(), "lib" | "main") {
            continue; // the crate root declares and re-exports everything
        }
        if module.last().is_some_and(|m| m == "testing") {
            continue; // test fixtures (`#[cfg(test)]`) may use any layer
        }
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let from = module
            .iter()
            .take(depth)
            .cloned()
            .collect::<Vec<_>>()
            .join("::");
        for target in references(&module, &code) {
            // Items of the crate root (`VERSION`, the re-exported `router`)
            // are its table of contents, not a layer.
            if target.is_empty() || target.len() == 1 || target[0].starts_with(char::is_uppercase) {
                continue;
            }
            let to = target
                .iter()
                .take(depth)
                .cloned()
                .collect::<Vec<_>>()
                .join("::");
            // A module's own children and its parent's items are one room.
            if to != from
                && !to.starts_with(&format!("{from}::"))
                && !from.starts_with(&format!("{to}::"))
            {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

#[test]
fn layers_only_look_down() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (from, tos) in edges(1) {
        let Some(may) = allowed.get(from.as_str()) else {
            wrong.push(format!("{from} is not in the table of layers"));
            continue;
        };
        for to in tos {
            if !may.contains(&to.as_str()) {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers: {wrong:#?}");
}

#[test]
fn ui_reaches_the_browser_client_through_one_file() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ui");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let reaching: Vec<_> = files
        .iter()
        .filter(|f| code_of(&std::fs::read_to_string(f).unwrap()).contains("crate::client"))
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(reaching, ["actions.rs"]);
}

/// Every module from which a path of imports leads back to itself, with
/// the path.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    // Depth-first search for a path back to where it started.
    fn reaches(
        graph: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        goal: &str,
        seen: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> bool {
        for next in graph.get(from).into_iter().flatten() {
            path.push(next.clone());
            if next == goal {
                return true;
            }
            if seen.insert(next.clone()) && reaches(graph, next, goal, seen, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut found = Vec::new();
    for start in graph.keys() {
        let mut path = vec![start.clone()];
        if reaches(graph, start, start, &mut BTreeSet::new(), &mut path) {
            found.push(path.join(" -> "));
        }
    }
    found
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = edges(2);
    assert!(
        graph.contains_key("http::tus") && graph["http::tus"].contains("http::headers"),
        "the graph is drawn: {graph:#?}"
    );
    let found = cycles(&graph);
    assert!(found.is_empty(), "import cycles: {found:#?}");
}

#[test]
fn a_loop_of_imports_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
            .into_iter()
            .fold(BTreeMap::new(), |mut g, (from, to)| {
                g.entry(from.to_string())
                    .or_default()
                    .insert(to.to_string());
                g
            });
    assert_eq!(
        cycles(&graph),
        ["a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c"]
    );
    let layered: BTreeMap<String, BTreeSet<String>> =
        [("a".to_string(), BTreeSet::from(["b".to_string()]))].into();
    assert!(cycles(&layered).is_empty());
}

#[test]
fn long_files_say_why() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut long = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => text[..i].lines().count(),
            None => text.lines().count(),
        };
        let says_why = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .any(|l| l.contains("Why this file is long:"));
        if lines > MAX_LINES && !says_why {
            long.push(format!("{} ({lines} lines)", file.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines without a reason at the top: {long:#?}"
    );
}

#[test]
fn every_module_says_what_it_owns() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let silent: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        silent.is_empty(),
        "modules without a //! header: {silent:#?}"
    );
}
