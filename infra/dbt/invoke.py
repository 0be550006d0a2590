"""Run several dbt commands in one Python process.

Each `dbt` command line starts Python, imports dbt and the Snowflake adapter and parses the
project: seconds every time. This parses once (partial parsing reuses target/ between runs) and
hands the manifest to every command through dbt's programmatic entry point, dbtRunner.

    python invoke.py --project-dir D --profiles-dir D --target-path T --vars '{...}' \
        --out summary.json run test "source freshness"

Each command's own results file (run_results.json, or sources.json for source freshness) is kept
as T/results-<command>.json, and summary.json lists, per command, whether it succeeded, how long
it took and where its results are. Commands run in the order given, whatever the outcome of the
previous one: a failed test must never hide the models' data.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", required=True)
    parser.add_argument("--profiles-dir", required=True)
    parser.add_argument("--target-path", required=True)
    parser.add_argument("--vars", default="{}")
    parser.add_argument("--out", required=True, help="where to write the summary (JSON)")
    parser.add_argument("commands", nargs="+", help='e.g. run test "source freshness"')
    args = parser.parse_args()

    started = time.monotonic()
    from dbt.cli.main import dbtRunner  # imported here so --help stays fast

    common = [
        "--project-dir", args.project_dir,
        "--profiles-dir", args.profiles_dir,
        "--target-path", args.target_path,
        "--vars", args.vars,
    ]
    target = Path(args.target_path)
    summary = {"import_seconds": time.monotonic() - started, "commands": []}

    parsed_at = time.monotonic()
    parse = dbtRunner().invoke(["parse", *common])
    summary["parse_seconds"] = time.monotonic() - parsed_at
    if not parse.success:
        summary["error"] = f"dbt parse failed: {parse.exception!r}"
        Path(args.out).write_text(json.dumps(summary, indent=2))
        return 2
    runner = dbtRunner(manifest=parse.result)

    for command in args.commands:
        results = target / ("sources.json" if command == "source freshness" else "run_results.json")
        kept = target / f"results-{command.replace(' ', '-')}.json"
        for stale in (results, kept):
            stale.unlink(missing_ok=True)
        began = time.monotonic()
        outcome = runner.invoke([*command.split(), *common])
        elapsed = time.monotonic() - began
        if results.exists():
            shutil.move(results, kept)
        summary["commands"].append({
            "command": command,
            "success": bool(outcome.success),
            "seconds": elapsed,
            "results": str(kept) if kept.exists() else None,
            "error": repr(outcome.exception) if outcome.exception else None,
        })
    Path(args.out).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
