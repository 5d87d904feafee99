//! The code's shape, checked on every run: no source file under `crates/*/src` past ~600
//! lines, and no import cycle among the modules of a crate, so each layer reads and tests
//! alone.
//!
//! A module's dependencies are the `crate::…` and `super::…` paths in its non-test code. A
//! module and its own ancestors or descendants are one namespace (a parent declares and
//! re-exports its children; children name their parent's types), so only edges between
//! modules on different branches count: `repl::feed` may use `repl`, but `persist` may not use
//! `repl` while `repl` uses `persist`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files may run a little past 600 lines; beyond this they must be split by concept.
const MAX_LINES: usize = 620;

type Module = Vec<String>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            // src/bin/* are separate crate roots, not modules of the library.
            if p.file_name().is_some_and(|n| n != "bin") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn crates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// `src/a/b.rs` → `a::b`; `src/a/mod.rs` → `a`; `src/lib.rs` → the root.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut m: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        m.pop();
    }
    m
}

/// The code a module ships: comments dropped, and nothing from its `#[cfg(test)]` item on.
fn shipped(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if !t.starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn ident(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    s.split_at(end)
}

/// The module paths named after `base` in `rest` (`a::b::Type`, `{a, b::{c, D}}`), lower-case
/// segments only (types and functions end a path).
fn paths(base: &Module, rest: &str, out: &mut Vec<Module>) {
    let mut path = base.clone();
    let mut s = rest;
    loop {
        if let Some(group) = s.strip_prefix('{') {
            let mut depth = 1;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        paths(&path, group[start..i].trim(), out);
                        start = i + 1;
                        if c == '}' {
                            return;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            return;
        }
        let (id, after) = ident(s);
        if id.is_empty() || id == "self" || !id.starts_with(|c: char| c.is_ascii_lowercase()) {
            break;
        }
        path.push(id.to_string());
        match after.strip_prefix("::") {
            Some(next) => s = next,
            None => break,
        }
    }
    out.push(path);
}

/// The module paths a module's code names through `crate::` and `super::`.
fn references(module: &Module, code: &str) -> BTreeSet<Module> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        paths(&Vec::new(), &code[i + "crate::".len()..], &mut out);
    }
    for (i, _) in code.match_indices("super::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut rest = &code[i..];
        let mut base = module.clone();
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        paths(&base, rest, &mut out);
    }
    out.into_iter().collect()
}

fn related(a: &Module, b: &Module) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn find_cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        u: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut BTreeMap<Module, u8>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        state.insert(u.clone(), 1);
        stack.push(u.clone());
        for v in &graph[u] {
            match state.get(v) {
                Some(1) => {
                    let at = stack.iter().position(|m| m == v).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(v.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(v, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(u.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for u in graph.keys() {
        if !state.contains_key(u) {
            let mut stack = Vec::new();
            if let Some(c) = visit(u, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

fn dependency_graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<Module, String> = files
        .iter()
        .map(|f| {
            (
                module_of(src, f),
                shipped(&std::fs::read_to_string(f).unwrap()),
            )
        })
        .collect();
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, code) in &modules {
        let deps = graph.entry(m.clone()).or_default();
        for r in references(m, code) {
            // The longest prefix of the path that is a module of this crate.
            let target = (0..=r.len())
                .rev()
                .map(|n| r[..n].to_vec())
                .find(|p| modules.contains_key(p));
            if let Some(t) = target
                && !related(m, &t)
            {
                deps.insert(t);
            }
        }
    }
    graph
}

fn show(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_source_file_is_longer_than_a_few_screens() {
    let mut long = Vec::new();
    for src in crates() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            if n > MAX_LINES {
                long.push(format!("{} ({n} lines)", f.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these by concept: {}",
        long.join(", ")
    );
}

#[test]
fn no_crate_has_an_import_cycle_among_its_modules() {
    for src in crates() {
        let graph = dependency_graph(&src);
        if let Some(cycle) = find_cycle(&graph) {
            let names: Vec<String> = cycle.iter().map(show).collect();
            panic!("{}: import cycle {}", src.display(), names.join(" → "));
        }
    }
}

#[test]
fn the_cycle_check_sees_cycles() {
    // Guards the checker itself: two sibling modules naming each other are caught, a child
    // naming its parent is not a cycle, and grouped imports are followed.
    let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    let m = |s: &str| -> Module { s.split("::").map(String::from).collect() };
    let refs_a = references(&m("a"), "use crate::{b::{self, Thing}, c};\n");
    assert_eq!(refs_a, [m("b"), m("c")].into());
    let refs_child = references(&m("b::child"), "use super::super::a::X;\nuse super::Y;\n");
    assert_eq!(refs_child, [m("a"), m("b")].into());
    g.insert(m("a"), [m("b")].into());
    g.insert(m("b"), BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
    g.insert(m("b"), [m("a")].into());
    assert!(find_cycle(&g).is_some());
    assert!(related(&m("b::child"), &m("b")));
}
