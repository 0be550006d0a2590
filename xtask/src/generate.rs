//! `cargo xtask gen`: a scenario's events, with no service involved.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use synth::output::{self, Format, Part};
use synth::{Generator, Scenario};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    scenario: crate::stack_args::ScenarioArg,
    /// ndjson: canonical JSON, one event per line (poison bodies have no JSON form and are
    /// left out, with a count on stderr). proto: length-delimited protobuf bodies exactly as
    /// published, poison included.
    #[arg(long, value_enum, default_value_t = FormatArg::Ndjson)]
    format: FormatArg,
    /// Which events: the history (for the backfill), the stream, or both (history first).
    #[arg(long, value_enum, default_value_t = PartArg::All)]
    part: PartArg,
    /// Output file, or - for stdout. A file is written whole or not at all.
    #[arg(
        long,
        value_name = "FILE|-",
        default_value = "-",
        conflicts_with = "publish"
    )]
    out: String,
    /// Publish the stream to the stack's RabbitMQ (exchange `events`, routing key
    /// `<source>.<type>`, publisher confirms) at the scenario's rate, instead of writing it.
    /// The history is the backfill's: `--part history` cannot be published.
    #[arg(long)]
    publish: bool,
    /// With --publish: as fast as the broker confirms, ignoring the scenario's rate.
    #[arg(long, requires = "publish")]
    unpaced: bool,
    #[command(flatten)]
    stack: crate::stack_args::StackArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Ndjson,
    Proto,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PartArg {
    History,
    Stream,
    All,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let scenario = self.scenario.load()?;
        let format = match self.format {
            FormatArg::Ndjson => Format::Ndjson,
            FormatArg::Proto => Format::Proto,
        };
        let part = match self.part {
            PartArg::History => Part::History,
            PartArg::Stream => Part::Stream,
            PartArg::All => Part::All,
        };
        let mut generator = Generator::new(&scenario, self.scenario.seed);
        if self.publish {
            anyhow::ensure!(
                matches!(self.part, PartArg::Stream | PartArg::All),
                "--part history cannot be published: the history goes through the backfill"
            );
            return publish(&self, &scenario, &mut generator);
        }
        let written = if self.out == "-" {
            let stdout = io::stdout().lock();
            match output::write(&mut generator, format, part, &mut BufWriter::new(stdout)) {
                // A reader that stops early (`| head`) is not an error.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                other => other.context("writing to stdout")?,
            }
        } else if is_special_file(Path::new(&self.out)) {
            // A device or pipe (`/dev/null`, a FIFO) is written in place: renaming a finished
            // file over it would replace the device itself.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.out)
                .with_context(|| format!("opening {}", self.out))?;
            let mut out = BufWriter::new(file);
            output::write(&mut generator, format, part, &mut out)
                .and_then(|w| out.into_inner().map_err(|e| e.into_error()).map(|_| w))
                .with_context(|| format!("writing {}", self.out))?
        } else {
            let path = PathBuf::from(&self.out);
            let partial = path.with_extension("partial");
            let file = File::create(&partial)
                .with_context(|| format!("creating {}", partial.display()))?;
            let mut out = BufWriter::new(file);
            let written = output::write(&mut generator, format, part, &mut out)
                .and_then(|w| {
                    out.into_inner()
                        .map_err(|e| e.into_error())?
                        .sync_all()
                        .map(|()| w)
                })
                .with_context(|| format!("writing {}", partial.display()))?;
            std::fs::rename(&partial, &path)
                .with_context(|| format!("renaming to {}", path.display()))?;
            written
        };
        let mut err = io::stderr().lock();
        let stats = generator.stats();
        writeln!(
            err,
            "{}: {} history + {} stream events ({} revisions, {} of them superseded on arrival), {} duplicates, {} poison{}, {} bytes",
            scenario.name,
            written.history,
            written.stream_events,
            stats.revisions,
            stats.superseded,
            written.duplicates,
            written.poison,
            if written.poison_left_out > 0 {
                " (left out of ndjson)"
            } else {
                ""
            },
            written.bytes,
        )?;
        Ok(())
    }
}

/// An existing path that is not a regular file or folder (a device, a FIFO, a socket).
fn is_special_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

fn publish(args: &Args, scenario: &Scenario, generator: &mut Generator) -> anyhow::Result<()> {
    use harness::rig::publish::{Pacing, PublishConfig};
    let root = crate::stack_args::root();
    let state = stack::State::load(&root, &args.stack.stack).with_context(|| {
        format!(
            "stack `{}` (start it with `cargo xtask up`)",
            args.stack.stack
        )
    })?;
    let mut config = PublishConfig::new(state.rabbitmq.amqp_url.clone());
    if args.unpaced {
        config.pacing = Pacing::Unpaced;
    }
    let bar =
        indicatif::ProgressBar::new_spinner().with_message(format!("publishing {}", scenario.name));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = crate::stack_args::runtime()?.block_on(harness::rig::publish::publish(
        &config,
        generator.stream(),
        |n| bar.set_message(format!("publishing {}: {n} confirmed", scenario.name)),
    ))?;
    bar.finish_and_clear();
    let target = report
        .target_rate()
        .map_or_else(|| "unpaced".to_owned(), |r| format!("{r:.0}/s"));
    eprintln!(
        "{}: published {} ({} events, {} duplicates, {} poison, {} bytes) in {:.2} s: {:.0}/s achieved, target {}",
        scenario.name,
        report.published,
        report.events,
        report.duplicates,
        report.poison,
        report.bytes,
        report.elapsed.as_secs_f64(),
        report.achieved_rate(),
        if args.unpaced {
            "unpaced".to_owned()
        } else {
            target
        },
    );
    Ok(())
}
