// SPDX-License-Identifier: MIT OR Apache-2.0
//! The shape of the code, checked: no import cycle among the modules of any crate (the
//! `crate::` edges of each source file, comments dropped), and each crate depending only on
//! the crates before it (`cargo tree`), so the boot build and the shim cannot reach host code.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Module name -> the modules of the same crate it names as `crate::NAME` (in paths and in
/// `use crate::{a, b::c}` lists).
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = BTreeMap::new();
    for e in fs::read_dir(src).expect("src") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let text: String = fs::read_to_string(&p)
                .expect("read source")
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            files.insert(name, text);
        }
    }
    let names: BTreeSet<String> = files.keys().cloned().collect();
    let mut out = BTreeMap::new();
    for (name, text) in &files {
        let mut deps = BTreeSet::new();
        for prefix in ["crate::"] {
            for (i, _) in text.match_indices(prefix) {
                let rest = &text[i + prefix.len()..];
                if let Some(list) = rest.strip_prefix('{') {
                    // Top-level names of a `{...}` list.
                    let mut depth = 0;
                    let mut word = String::new();
                    let mut at_start = true;
                    for c in list.chars() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => break,
                            '}' => depth -= 1,
                            ',' if depth == 0 => at_start = true,
                            c if depth == 0 && at_start && (c.is_alphanumeric() || c == '_') => {
                                word.push(c)
                            }
                            _ if depth == 0 && !word.is_empty() => {
                                deps.insert(std::mem::take(&mut word));
                                at_start = false;
                            }
                            _ => {}
                        }
                    }
                    if !word.is_empty() {
                        deps.insert(word);
                    }
                } else {
                    let word: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    deps.insert(word);
                }
            }
        }
        deps.retain(|d| names.contains(d) && d != name);
        out.insert(name.clone(), deps);
    }
    out
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct S<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut S<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in &s.g[v] {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = S {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The source directories of the workspace's crates, with how many modules each has at least.
const CRATES: [(&str, usize); 4] = [
    ("core/src", 15),
    ("system/src", 9),
    ("engine/src", 10),
    ("src", 10),
];

fn dir(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn no_import_cycle_among_the_modules_of_any_crate() {
    for (rel, at_least) in CRATES {
        let g = edges(&dir(rel));
        assert!(g.len() > at_least, "{rel}: modules not found: {g:?}");
        let found = cycles(&g);
        assert!(found.is_empty(), "{rel}: import cycles: {found:?}");
    }
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("a.rs"), "use crate::{b::X, c};\n").unwrap();
    fs::write(
        t.path().join("b.rs"),
        "fn f() { crate::a::g() } // crate::c\n",
    )
    .unwrap();
    fs::write(t.path().join("c.rs"), "use crate::b;\n").unwrap();
    fs::write(t.path().join("d.rs"), "use crate::a;\n").unwrap();
    let g = edges(t.path());
    assert_eq!(
        g["b"],
        BTreeSet::from(["a".to_string()]),
        "comments dropped"
    );
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
}

/// `cargo tree` of one package, normal dependencies only, one name a line.
fn tree(package: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Each crate uses only the crates before it: core <- system <- engine <- vfio-early (host).
/// The boot build and the shim are the engine's binaries, so what the engine cannot reach they
/// cannot either.
#[test]
fn each_crate_uses_only_the_crates_before_it() {
    let core = tree("vfio-early-core");
    let system = tree("vfio-early-system");
    let engine = tree("vfio-early-engine");
    let host = tree("vfio-early");
    for (name, deps, not) in [
        (
            "core",
            &core,
            &[
                "vfio-early-system",
                "vfio-early-engine",
                "vfio-early",
                "nix",
                "serde_json",
            ][..],
        ),
        (
            "system",
            &system,
            &["vfio-early-engine", "vfio-early", "serde_json"][..],
        ),
        ("engine", &engine, &["vfio-early", "serde_json"][..]),
    ] {
        let bad: Vec<&&str> = not.iter().filter(|n| deps.contains(**n)).collect();
        assert!(bad.is_empty(), "{name} depends on {bad:?}: {deps:?}");
    }
    assert!(system.contains("vfio-early-core"), "{system:?}");
    assert!(engine.contains("vfio-early-system"), "{engine:?}");
    assert!(host.contains("vfio-early-engine"), "{host:?}");
}
