//! Sluice's service images, built here from `infra/containers/` and `infra/python/`'s pins on a
//! Debian base made locally (debootstrap + `docker import`), so no registry is needed; without
//! root or debootstrap, Debian's image from a registry makes the base instead.
//!
//! Each image is tagged with a hash of its inputs (the Containerfile, every file it copies and the
//! base's tag): an image whose tag exists is up to date and never rebuilt, and a changed pin
//! changes the tag of exactly the images that copy it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::engine::Engine;
use crate::error::{Result, StackError, io_err};

/// How the base is made; part of its tag, so a change here makes a new base.
const BASE_SUITE: &str = "bookworm";
const BASE_VARIANT: &str = "minbase";
const BASE_MIRROR: &str = "http://deb.debian.org/debian";

/// The Debian base every service image builds on.
pub fn base_image() -> String {
    let digest = Sha256::digest(format!("{BASE_SUITE}/{BASE_VARIANT}/{BASE_MIRROR}").as_bytes());
    format!("sluice/debian-base:{BASE_SUITE}-{}", hex(&digest[..6]))
}

/// One service image: its Containerfile and the files its build copies, relative to `infra/`.
#[derive(Clone, Copy, Debug)]
pub struct Recipe {
    pub service: &'static str,
    pub containerfile: &'static str,
    pub files: &'static [&'static str],
}

pub const RECIPES: [Recipe; 4] = [
    Recipe {
        service: "rabbitmq",
        containerfile: "containers/rabbitmq.Containerfile",
        files: &[],
    },
    Recipe {
        service: "postgres",
        containerfile: "containers/postgres.Containerfile",
        files: &["containers/postgres-start.sh"],
    },
    Recipe {
        service: "localstack",
        containerfile: "containers/localstack.Containerfile",
        files: &["python/uv.txt", "python/localstack-py311.txt"],
    },
    Recipe {
        service: "fakesnow",
        containerfile: "containers/fakesnow.Containerfile",
        files: &["python/uv.txt", "python/warehouse-tools.txt"],
    },
];

/// The image a recipe makes from the inputs as they are now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub service: &'static str,
    /// `sluice/<service>:<hash of inputs>`.
    pub image: String,
    pub inputs: Vec<PathBuf>,
}

impl Planned {
    pub fn repository(&self) -> &str {
        self.image.split_once(':').map_or(&self.image, |(r, _)| r)
    }
    pub fn tag(&self) -> &str {
        self.image.split_once(':').map_or("latest", |(_, t)| t)
    }
}

/// The four images for the inputs under `infra` (no engine needed).
pub fn plan(infra: &Path) -> Result<Vec<Planned>> {
    let base = base_image();
    RECIPES
        .iter()
        .map(|r| {
            let inputs: Vec<PathBuf> = std::iter::once(r.containerfile)
                .chain(r.files.iter().copied())
                .map(|f| infra.join(f))
                .collect();
            let mut h = Sha256::new();
            h.update(base.as_bytes());
            for path in &inputs {
                let bytes = std::fs::read(path)
                    .map_err(io_err(format!("reading image input {}", path.display())))?;
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                h.update(format!("\n{name} {}\n", bytes.len()).as_bytes());
                h.update(&bytes);
            }
            Ok(Planned {
                service: r.service,
                image: format!("sluice/{}:{}", r.service, hex(&h.finalize()[..6])),
                inputs,
            })
        })
        .collect()
}

/// What happened to one image.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// It existed: nothing was built.
    Reused,
    Built {
        seconds: f64,
    },
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub image: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

pub fn exists(engine: &Engine, image: &str) -> bool {
    engine
        .docker()
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub struct BuildOptions<'a> {
    pub infra: PathBuf,
    /// Build logs and scratch (the base's root file system while it is made).
    pub work_dir: PathBuf,
    /// The CA bundle handed to the builds' downloads (for TLS-intercepting proxies); not part of
    /// an image's identity.
    pub ca_bundle: Option<PathBuf>,
    /// Called with a line when a step starts.
    pub progress: &'a dyn Fn(&str),
}

/// Builds the base and every image whose tag does not exist yet.
pub fn build(engine: &Engine, options: &BuildOptions) -> Result<Vec<Report>> {
    std::fs::create_dir_all(&options.work_dir)
        .map_err(io_err(format!("creating {}", options.work_dir.display())))?;
    let planned = plan(&options.infra)?;
    let mut reports = vec![ensure_base(engine, options)?];
    for p in &planned {
        if exists(engine, &p.image) {
            reports.push(Report {
                image: p.image.clone(),
                outcome: Outcome::Reused,
            });
            continue;
        }
        (options.progress)(&format!("building {} ...", p.image));
        let t0 = Instant::now();
        build_one(engine, options, p)?;
        reports.push(Report {
            image: p.image.clone(),
            outcome: Outcome::Built {
                seconds: secs(t0.elapsed()),
            },
        });
    }
    Ok(reports)
}

fn ensure_base(engine: &Engine, options: &BuildOptions) -> Result<Report> {
    let image = base_image();
    if exists(engine, &image) {
        return Ok(Report {
            image,
            outcome: Outcome::Reused,
        });
    }
    let debootstrap = ["/usr/sbin/debootstrap", "/usr/bin/debootstrap"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let Some(debootstrap) = debootstrap.filter(|_| root) else {
        // Without root or debootstrap, Debian's own image from a registry makes the base.
        let official = format!("debian:{BASE_SUITE}");
        (options.progress)(&format!(
            "pulling {official} for the base (no root with debootstrap here) ..."
        ));
        let t0 = Instant::now();
        engine
            .run(&["pull", &official])
            .map_err(|e| StackError::Docker {
                command: format!("docker pull {official}"),
                reason: format!(
                    "{e}; the Debian base needs a registry, or root with debootstrap \
                 (`apt-get install debootstrap`) to make it without one"
                ),
            })?;
        engine.run(&["tag", &official, &image])?;
        return Ok(Report {
            image,
            outcome: Outcome::Built {
                seconds: secs(t0.elapsed()),
            },
        });
    };
    (options.progress)(&format!(
        "making {image} with debootstrap ({BASE_SUITE}, {BASE_VARIANT}, {BASE_MIRROR}) ..."
    ));
    let t0 = Instant::now();
    let rootfs = options.work_dir.join("base-rootfs");
    let _ = std::fs::remove_dir_all(&rootfs);
    let log = options.work_dir.join("base.log");
    run_logged(
        Command::new(debootstrap).args([
            &format!("--variant={BASE_VARIANT}"),
            BASE_SUITE,
            &rootfs.display().to_string(),
            BASE_MIRROR,
        ]),
        &log,
        "debootstrap",
    )?;
    // Package caches make the image bigger and are fetched again by every build anyway.
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let dir = rootfs.join(cache);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_file() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(io_err("running tar"))?;
    let mut import = engine.docker();
    import
        .args(["import", "-", &image])
        .stdin(tar.stdout.expect("piped"));
    run_logged(&mut import, &log, "docker import")?;
    let _ = std::fs::remove_dir_all(&rootfs);
    Ok(Report {
        image,
        outcome: Outcome::Built {
            seconds: secs(t0.elapsed()),
        },
    })
}

fn build_one(engine: &Engine, options: &BuildOptions, p: &Planned) -> Result<()> {
    let context = options.work_dir.join(format!("context-{}", p.service));
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context).map_err(io_err(format!("creating {}", context.display())))?;
    for input in &p.inputs {
        let to = context.join(input.file_name().expect("a file"));
        std::fs::copy(input, &to).map_err(io_err(format!("copying {}", input.display())))?;
    }
    let ca = context.join("build-ca.crt");
    match &options.ca_bundle {
        Some(bundle) => std::fs::copy(bundle, &ca)
            .map(|_| ())
            .map_err(io_err(format!("copying {}", bundle.display())))?,
        None => std::fs::write(&ca, b"").map_err(io_err("writing an empty CA bundle"))?,
    }
    let containerfile = p.inputs[0].file_name().expect("a file").to_owned();
    let log = options.work_dir.join(format!("build-{}.log", p.service));
    run_logged(
        engine
            .docker()
            .args(["build", "--force-rm", "--network", "host", "--build-arg"])
            .arg(format!("BASE={}", base_image()))
            .arg("--label")
            .arg(format!("sluice.service={}", p.service))
            .arg("-f")
            .arg(context.join(containerfile))
            .args(["-t", &p.image])
            .arg(&context),
        &log,
        &format!("building {}", p.image),
    )?;
    let _ = std::fs::remove_dir_all(&context);
    Ok(())
}

/// Runs a command with its output appended to `log`; a failure names the log and its tail.
fn run_logged(c: &mut Command, log: &Path, what: &str) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(format!("opening {}", log.display())))?;
    let status = c
        .stdout(file.try_clone().map_err(io_err("log handle"))?)
        .stderr(file)
        .status()
        .map_err(io_err(format!("running {what}")))?;
    if !status.success() {
        return Err(StackError::Exited {
            service: "image build",
            status: format!("{what}: {status}"),
            log: log.to_owned(),
            tail: crate::log_tail(log, 25),
        });
    }
    Ok(())
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);
    impl Scratch {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn infra_copy() -> Scratch {
        let dir = Scratch(std::env::temp_dir().join(format!(
            "sluice-images-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )));
        for r in RECIPES {
            for f in std::iter::once(r.containerfile).chain(r.files.iter().copied()) {
                let to = dir.path().join(f);
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(crate::infra_dir().join(f), to).unwrap();
            }
        }
        dir
    }

    #[test]
    fn every_copied_file_is_an_input_of_its_image() {
        // A COPY of a file the recipe does not list would fail the build; one listed but not
        // copied would rebuild for nothing.
        for r in RECIPES {
            let text = std::fs::read_to_string(crate::infra_dir().join(r.containerfile)).unwrap();
            let copied: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("COPY "))
                .flat_map(|l| {
                    let words: Vec<&str> = l.split_whitespace().collect();
                    words[..words.len() - 1].to_vec()
                })
                .filter(|w| *w != "build-ca.crt")
                .collect();
            let listed: Vec<&str> = r
                .files
                .iter()
                .map(|f| f.rsplit('/').next().unwrap())
                .collect();
            assert_eq!(copied, listed, "{}", r.containerfile);
        }
    }

    /// The services whose image tag differs between two plans.
    fn changed(before: &[Planned], after: &[Planned]) -> Vec<&'static str> {
        before
            .iter()
            .zip(after)
            .filter(|(b, a)| b.image != a.image)
            .map(|(b, _)| b.service)
            .collect()
    }

    #[test]
    fn a_changed_pin_changes_the_tag_of_exactly_the_images_that_copy_it() {
        let infra = infra_copy();
        let before = plan(infra.path()).unwrap();
        assert_eq!(
            before,
            plan(infra.path()).unwrap(),
            "same inputs, same tags"
        );
        let pins = infra.path().join("python/warehouse-tools.txt");
        let mut text = std::fs::read_to_string(&pins).unwrap();
        text.push_str("# changed\n");
        std::fs::write(&pins, text).unwrap();
        let after = plan(infra.path()).unwrap();
        assert_eq!(changed(&before, &after), ["fakesnow"]);
        let uv = infra.path().join("python/uv.txt");
        std::fs::write(&uv, "uv==0.0.1\n").unwrap();
        let again = plan(infra.path()).unwrap();
        assert_eq!(changed(&after, &again), ["localstack", "fakesnow"]);
    }

    #[test]
    fn a_missing_input_is_named() {
        let infra = infra_copy();
        std::fs::remove_file(infra.path().join("containers/postgres-start.sh")).unwrap();
        let err = plan(infra.path()).unwrap_err().to_string();
        assert!(err.contains("postgres-start.sh"), "{err}");
    }
}
