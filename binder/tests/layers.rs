// SPDX-License-Identifier: MIT OR Apache-2.0
//! The shape of the code, checked: no import cycle among the modules of the crate (the
//! `crate::` edges of each source file, comments dropped), and every module reachable from the
//! boot build's entry points listed, so a host module entering the boot build is seen.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Module name -> the modules of the same crate it names as `crate::NAME` (in paths and in
/// `use crate::{a, b::c}` lists); `vfio_early::NAME` for the binaries.
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
        for prefix in ["crate::", "vfio_early::"] {
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

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_cycle_among_the_modules() {
    let g = edges(&src());
    assert!(g.len() > 30, "modules not found: {g:?}");
    let found = cycles(&g);
    assert!(found.is_empty(), "import cycles: {found:?}");
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

/// What the boot build and the shim can reach (their entry points' modules and everything those
/// name): the host commands must not be among them.
#[test]
fn the_boot_build_reaches_no_host_command() {
    let g = edges(&src());
    let mut seen = BTreeSet::new();
    let mut todo = vec!["main_boot".to_string(), "main_init".to_string()];
    while let Some(m) = todo.pop() {
        if seen.insert(m.clone()) {
            todo.extend(g[&m].iter().cloned());
        }
    }
    let host = [
        "addon",
        "check",
        "confedit",
        "nextboot",
        "status",
        "romcli",
        "statefile",
        "pciids",
        "imagetool",
        "initrd",
    ];
    let leaked: Vec<&str> = host.iter().copied().filter(|h| seen.contains(*h)).collect();
    assert!(
        leaked.is_empty(),
        "the boot build reaches {leaked:?} (via {seen:?})"
    );
}
