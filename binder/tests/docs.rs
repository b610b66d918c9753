// SPDX-License-Identifier: MIT OR Apache-2.0
//! The documentation holds together: the README is a quickstart (at most 250 lines) and every
//! relative link of the README and of docs/*.md names a file in the tree.

use std::fs;
use std::path::{Path, PathBuf};

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The targets of `[text](target)` links: relative ones only (no scheme), anchors cut off.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        if !target.contains("://") && !target.starts_with('#') && !target.starts_with("mailto:") {
            out.push(target.split('#').next().unwrap_or("").to_string());
        }
    }
    out
}

#[test]
fn the_readme_is_a_quickstart() {
    let readme = fs::read_to_string(top().join("README.md")).expect("README.md");
    let n = readme.lines().count();
    assert!(
        n <= 250,
        "README.md has {n} lines; the rest belongs in docs/"
    );
    // The two commands of the setup stay in it.
    assert!(readme.contains("tests/demo.sh") && readme.contains("tests/run-all.sh"));
}

#[test]
fn every_relative_link_resolves() {
    let mut pages = vec![top().join("README.md")];
    for e in fs::read_dir(top().join("docs")).expect("docs/") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    assert!(pages.len() > 8, "{pages:?}");
    let mut broken = Vec::new();
    for page in &pages {
        let text = fs::read_to_string(page).expect("page");
        let dir = page.parent().expect("a directory");
        for l in links(&text) {
            if !dir.join(&l).exists() {
                broken.push(format!("{}: {l}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
}

#[test]
fn the_link_reader_reads_links() {
    assert_eq!(
        links("see [a](docs/a.md#x), [b](https://x.org/b) and [c](#c) or [d](../d)"),
        ["docs/a.md", "../d"]
    );
}
