//! A fresh machine: two tool sets installed at the same time into an empty cache (what `up`
//! does) must share one uv install without tripping over each other.

#[test]
fn concurrent_first_installs_share_uv() {
    let root = std::env::temp_dir().join(format!("pytools-fresh-{}", std::process::id()));
    let cache = root.join("cache");
    std::fs::create_dir_all(&root).unwrap();
    let tools: Vec<pytools::ToolSet> = ["a", "b"]
        .iter()
        .map(|name| {
            let pins = root.join(format!("{name}.txt"));
            std::fs::write(&pins, "six==1.17.0\n").unwrap();
            pytools::ToolSet {
                name: (*name).into(),
                requirements: pins,
                constraints: None,
                min_python: (3, 11),
            }
        })
        .collect();
    let venvs: Vec<pytools::Venv> = std::thread::scope(|s| {
        let handles: Vec<_> = tools
            .iter()
            .map(|t| s.spawn(|| pytools::ensure_in(&cache, t)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap_or_else(|e| panic!("{e}")))
            .collect()
    });
    for venv in &venvs {
        let out = std::process::Command::new(venv.python())
            .args(["-c", "import six; print(six.__version__)"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "1.17.0",
            "{}",
            venv.dir.display()
        );
    }
    // A second call finds them complete and builds nothing.
    let again = pytools::ensure_in(&cache, &tools[0]).unwrap();
    assert_eq!(again.dir, venvs[0].dir);
    std::fs::remove_dir_all(&root).unwrap();
}
