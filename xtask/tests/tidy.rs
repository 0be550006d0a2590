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
        let dir = entry.unwrap().path();
        // cargo-hakari writes the workspace-hack's dependencies, with exact features.
        if !dir.ends_with("workspace-hack") {
            manifests.push(dir.join("Cargo.toml"));
        }
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

/// The cargo invocations the README, `cargo xtask` and `cargo xtask ci` make, as `cargo tree`
/// selections of packages, features and dependency kinds.
const BUILDS: &[(&str, &[&str])] = &[
    (
        "`cargo xtask` (the xtask binary)",
        &["-p", "xtask", "-e", "normal,build"],
    ),
    (
        "the components `cargo xtask e2e` builds",
        &[
            "-p",
            "relay",
            "-p",
            "batcher",
            "-p",
            "lambda-host",
            "-p",
            "pipe",
            "-p",
            "cdc",
            "-e",
            "normal,build",
        ],
    ),
    (
        "`cargo test --workspace --all-targets`",
        &["--workspace", "-e", "normal,build,dev"],
    ),
    (
        "the provisioning crate's tests alone (`cargo test -p stack`)",
        &["-p", "stack", "-e", "normal,build,dev"],
    ),
];

/// `cargo tree` over a selection, one package per line in `format`, without the tree drawing.
fn cargo_tree(format: &str, args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "--locked", "--prefix", "none", "--format", format])
        .args(args)
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every third-party package of a selection, with the feature sets it is built with.
fn resolved(
    args: &[&str],
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut packages: std::collections::BTreeMap<_, std::collections::BTreeSet<_>> =
        Default::default();
    for line in cargo_tree("{p}|{f}", args).lines() {
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        // Workspace members carry their path; their own builds are cheap and expected to differ.
        if package.contains(" (/") {
            continue;
        }
        let package = package.trim_end_matches(" (proc-macro)").to_owned();
        let features = features.trim_end_matches(" (*)").to_owned();
        packages.entry(package).or_default().insert(features);
    }
    packages
}

/// The dependencies compile once per machine: every command above builds each third-party
/// package with the same features, so none of them builds it (and all that depends on it) again.
/// The workspace-hack crate (`crates/workspace-hack`, managed by cargo-hakari) is what makes this
/// hold; when a dependency change breaks it, regenerate that crate.
#[test]
fn every_command_reuses_one_dependency_build() {
    let builds: Vec<_> = BUILDS
        .iter()
        .map(|(what, args)| (*what, resolved(args)))
        .collect();
    // What the default builds compile; a crate only the feature builds use (serde_with for
    // bollard and the Lambda events) is compiled by each of those alone and shared by nothing.
    let default = &builds[2].1;
    let mut problems = Vec::new();
    for (i, (what_a, a)) in builds.iter().enumerate() {
        for (what_b, b) in &builds[i + 1..] {
            for (package, features_a) in a {
                if let Some(features_b) = b.get(package)
                    && default.contains_key(package)
                    && features_a != features_b
                {
                    problems.push(format!(
                        "{package}: features {features_a:?} for {what_a}, {features_b:?} for {what_b}"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dependencies built with different features by different commands (each difference \
         compiles them again); regenerate the workspace-hack with \
         `cargo hakari generate && cargo hakari manage-deps` (`cargo install cargo-hakari --locked`):\n{}",
        problems.join("\n")
    );
}

/// The workspace crates a production component may link (besides itself and the
/// workspace-hack): the event contract, the file formats, the runtime glue and the Snowflake
/// client. Never the provisioning (`stack`), the generator (`synth`) or the harness.
const COMPONENT_DEPENDENCIES: &[&str] = &["events", "rawfiles", "runtime", "snowflake"];

/// Workspace members a package links in its normal build, transitively.
fn linked_members(package: &str) -> Vec<String> {
    let mut members: Vec<String> = cargo_tree("{p}", &["-e", "normal", "-p", package])
        .lines()
        // Workspace members carry their path: `name v0.0.0 (/path)`.
        .filter(|line| line.contains(" (/"))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    members.sort();
    members.dedup();
    members
}

#[test]
fn production_components_link_only_what_production_runs() {
    let mut problems = Vec::new();
    for component in ["relay", "batcher", "pipe", "backfill", "cdc"] {
        for member in linked_members(component) {
            if member != component
                && member != "workspace-hack"
                && !COMPONENT_DEPENDENCIES.contains(&member.as_str())
            {
                problems.push(format!("{component} links {member}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "a production component may link only {COMPONENT_DEPENDENCIES:?} of the workspace \
         (move test-only crates to [dev-dependencies]):\n{}",
        problems.join("\n")
    );
}

/// Provisioning stands below the components: a component's change never rebuilds `stack`, and
/// what a component needs made (the cdc's slot) the component makes itself (`cdc setup`).
#[test]
fn the_provisioning_crate_links_no_component() {
    let linked: Vec<String> = linked_members("stack")
        .into_iter()
        .filter(|m| ["relay", "batcher", "pipe", "backfill", "cdc"].contains(&m.as_str()))
        .collect();
    assert!(
        linked.is_empty(),
        "stack links the components {linked:?}; provisioning may link none"
    );
}

/// The stack outputs the code reads are the ones the template promises in both targets (its
/// Metadata `outputs-read-by-up`, which cfn-lint's rule E9103 holds to no Condition): a
/// component reading an `aws`-only output would find nothing on the local target.
#[test]
fn the_code_reads_only_outputs_both_targets_have() {
    let template =
        std::fs::read_to_string(root().join("infra/cloudformation/pipeline.yaml")).unwrap();
    let mut promised = Vec::new();
    let mut outputs = Vec::new();
    let mut section = "";
    for line in template.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            section = line.trim_end_matches(':');
            continue;
        }
        if line.trim_start().starts_with("outputs-read-by-up:") {
            section = "promised";
            continue;
        }
        match section {
            "promised" => match line.trim_start().strip_prefix("- ") {
                Some(name) if line.starts_with("      ") => promised.push(name.trim().to_owned()),
                _ if line.trim_start().starts_with('#') => {}
                _ => section = "Metadata",
            },
            "Outputs" => {
                if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
                    && !name.starts_with(' ')
                    && !name.starts_with('#')
                {
                    outputs.push(name.to_owned());
                }
            }
            _ => {}
        }
    }
    assert!(promised.len() >= 6, "the promised outputs: {promised:?}");
    assert!(
        outputs.len() > promised.len(),
        "the template's outputs: {outputs:?}"
    );
    let mut files = Vec::new();
    for dir in ["crates", "xtask/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut problems = Vec::new();
    for file in files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "tests"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for output in outputs.iter().filter(|o| !promised.contains(o)) {
            if text.contains(&format!("\"{output}\"")) {
                problems.push(format!(
                    "{} reads the output {output}, which only the aws target has",
                    file.strip_prefix(root()).unwrap_or(file).display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
