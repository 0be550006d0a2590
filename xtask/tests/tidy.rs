//! Repository hygiene, checked like any other test (after rust-analyzer's tidy.rs).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

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

#[test]
fn crate_folders_are_named_like_their_crates() {
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let folder = dir.file_name().unwrap().to_str().unwrap();
        assert!(
            manifest.contains(&format!("name = \"{folder}\"")),
            "{folder}: package name differs from folder"
        );
        assert!(
            manifest.contains("description = "),
            "{folder}: says what it is"
        );
        assert!(
            manifest.contains("publish.workspace = true"),
            "{folder}: internal crates are not published"
        );
    }
}

#[test]
fn no_stubs_or_ignored_tests() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    rust_files(&root().join("xtask"), &mut files);
    let needles = [
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("#[", "ignore"),
    ];
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in needles {
            assert!(
                !text.contains(needle),
                "{} contains {needle}",
                file.display()
            );
        }
    }
}

#[test]
fn dependencies_are_declared_once_in_the_workspace() {
    let mut manifests = vec![root().join("xtask/Cargo.toml")];
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        manifests.push(entry.unwrap().path().join("Cargo.toml"));
    }
    for manifest in manifests {
        let doc: toml::Table = std::fs::read_to_string(&manifest).unwrap().parse().unwrap();
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = doc.get(section).and_then(|d| d.as_table()) else {
                continue;
            };
            for (name, spec) in deps {
                let from_workspace = spec.get("workspace").and_then(|w| w.as_bool()) == Some(true);
                assert!(
                    from_workspace,
                    "{}: [{section}] {name} must be `{name}.workspace = true` (versions live in the root Cargo.toml)",
                    manifest.display()
                );
            }
        }
    }
}
