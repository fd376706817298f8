"""The subcommands: each one's module (imported only when invoked) and its line in `mlpipe --help`."""

from __future__ import annotations

# Subcommands are imported only when invoked, so `mlpipe --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "ci-run": ("mlpipe.cli.ci_run", "Plan, run or reuse every step, record the run, print a summary."),
    "plan": ("mlpipe.cli.plan", "Say for each step whether it would run or be reused, and why."),
    "report": (
        "mlpipe.cli.report",
        "Merge a fan-out run's jobs into one run record; complete its check run.",
    ),
    "validate": ("mlpipe.cli.validate", "Check the pipeline file and report every problem."),
    "snapshot": ("mlpipe.cli.snapshot", "Print a directory's code snapshot: its git tree hash and files."),
    "runs": ("mlpipe.cli.runs", "List recorded runs, newest first."),
    "show": ("mlpipe.cli.show", "Show one run record."),
    "diff": ("mlpipe.cli.diff", "Which steps differ between two runs or commits, and the metrics diff."),
    "verify": ("mlpipe.cli.verify", "Check every artifact a release manifest names is stored and intact."),
    "reproduce": (
        "mlpipe.cli.reproduce",
        "Rerun a release or run from scratch in a temporary worktree; compare.",
    ),
    "checkout": (
        "mlpipe.cli.checkout",
        "Bring back the exact code a run ran on (fetched from the registry if needed).",
    ),
    "pull": ("mlpipe.cli.pull", "Check a step's stored outputs out into the workspace."),
    "fsck": (
        "mlpipe.cli.fsck",
        "Check the local store: every object, result and materialized output is whole.",
    ),
    "gc": ("mlpipe.cli.gc", "Remove cache entries no kept run points to, locally and in a registry."),
    "config": ("mlpipe.cli.config", "Show each setting and where its value came from."),
    "export": ("mlpipe.cli.export", "Print the resolved pipeline as canonical JSON."),
    "schema": ("mlpipe.cli.schema", "Print the JSON Schema of the pipeline file."),
    "data": (
        "mlpipe.cli.data",
        "Record data sets kept out of git; push them to and pull them from the store.",
    ),
}
