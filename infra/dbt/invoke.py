"""Run several dbt commands in one Python process, or serve many such requests from one process.

Each `dbt` command line starts Python, imports dbt and the Snowflake adapter and parses the
project: seconds every time. This parses once (partial parsing reuses target/ between runs) and
hands the manifest to every command through dbt's programmatic entry point, dbtRunner.

    python invoke.py --project-dir D --profiles-dir D --target-path T --vars '{...}' \
        --out summary.json run test "source freshness"

With --serve it stays up and reads one request per line on stdin, a JSON object
{"project_dir": D, "target_path": T, "log_dir": L, "vars": "{...}", "commands": [...],
"out": "summary.json", "log": "run.log"}, and answers each with one line on stdout once its
summary is written; dbt's own output goes to the request's log. Manifests are kept between
requests and parsed again only when a file of the project or the vars change, so a harness that
runs dbt once per run pays dbt's import and parse once per process rather than once per run
(about 6 s of a 17 s dbt step on a 2-core machine).

Without --serve it exits 0 only if every command succeeded (1 if one failed, 2 if the project did
not parse), so a scheduler's task (the Airflow DAG in infra/airflow) fails on a failed model or test.

Each command's own results file (run_results.json, or sources.json for source freshness) is kept
as T/results-<command>.json, and summary.json lists, per command, whether it succeeded, how long
it took and where its results are. Commands run in the order given, whatever the outcome of the
previous one: a failed test must never hide the models' data.
"""

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path


# Manifests a server keeps: the project under test and the mutants a test builds beside it.
MANIFESTS_KEPT = 4


def common_args(args, vars_text):
    return [
        "--project-dir", args.project_dir,
        "--profiles-dir", args.profiles_dir,
        "--target-path", args.target_path,
        "--vars", vars_text,
    ]


def project_fingerprint(project_dir):
    """Every file of the project with its size and modification time: a change means a new parse."""
    seen = []
    for folder, subfolders, files in os.walk(project_dir):
        subfolders[:] = sorted(d for d in subfolders if d not in ("target", "logs", "dbt_packages"))
        for name in sorted(files):
            stat = os.stat(os.path.join(folder, name))
            seen.append((os.path.relpath(os.path.join(folder, name), project_dir), stat.st_mtime_ns, stat.st_size))
    return tuple(seen)


def run_commands(dbt_runner, manifest, common, target, commands, summary):
    runner = dbt_runner(manifest=manifest)
    for command in commands:
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


def parse(dbt_runner, common, summary):
    parsed_at = time.monotonic()
    parsed = dbt_runner().invoke(["parse", *common])
    summary["parse_seconds"] = time.monotonic() - parsed_at
    if not parsed.success:
        summary["error"] = f"dbt parse failed: {parsed.exception!r}"
        return None
    return parsed.result


@contextlib.contextmanager
def output_to(log_path):
    """Points this process's stdout and stderr (file descriptors, so dbt's handlers follow) at a log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def serve():
    # The protocol keeps the original stdout; whatever dbt prints goes to stderr or a request's log.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    started = time.monotonic()
    from dbt.cli.main import dbtRunner
    import_seconds = time.monotonic() - started
    manifests = {}  # (project, target, vars, fingerprint) -> manifest, most recently used last
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        summary = {"import_seconds": import_seconds, "parse_seconds": 0.0, "commands": []}
        import_seconds = 0.0
        args = argparse.Namespace(
            project_dir=request["project_dir"],
            profiles_dir=request["project_dir"],
            target_path=request["target_path"],
        )
        common = [*common_args(args, request["vars"]), "--log-path", request["log_dir"]]
        with output_to(request["log"]):
            key = (args.project_dir, args.target_path, request["vars"], project_fingerprint(args.project_dir))
            manifest = manifests.pop(key, None)
            if manifest is None:
                manifest = parse(dbtRunner, common, summary)
            if manifest is not None:
                manifests[key] = manifest
                while len(manifests) > MANIFESTS_KEPT:
                    manifests.pop(next(iter(manifests)))
                run_commands(dbtRunner, manifest, common, Path(args.target_path), request["commands"], summary)
        Path(request["out"]).write_text(json.dumps(summary, indent=2))
        protocol.write(json.dumps({"done": request["out"]}) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir")
    parser.add_argument("--profiles-dir")
    parser.add_argument("--target-path")
    parser.add_argument("--vars", default="{}")
    parser.add_argument("--out", help="where to write the summary (JSON)")
    parser.add_argument("--serve", action="store_true", help="answer requests on stdin (see above)")
    parser.add_argument("commands", nargs="*", help='e.g. run test "source freshness"')
    args = parser.parse_args()
    if args.serve:
        return serve()
    if not (args.project_dir and args.profiles_dir and args.target_path and args.out and args.commands):
        parser.error("--project-dir, --profiles-dir, --target-path, --out and a command are needed without --serve")

    started = time.monotonic()
    from dbt.cli.main import dbtRunner  # imported here so --help stays fast

    common = common_args(args, args.vars)
    summary = {"import_seconds": time.monotonic() - started, "commands": []}
    manifest = parse(dbtRunner, common, summary)
    if manifest is not None:
        run_commands(dbtRunner, manifest, common, Path(args.target_path), args.commands, summary)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    if manifest is None:
        print(summary["error"], file=sys.stderr)
        return 2
    failed = [c["command"] for c in summary["commands"] if not c["success"]]
    if failed:
        print(f"dbt {', '.join(failed)} failed; results in {args.target_path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
