"""mlpipe as a library: what the CLI calls, and what anything else that runs pipelines (a fan-out across
runners, a test) calls instead of the CLI. Each command is a function that takes typed options and returns a
result object; `cli/` only parses arguments into the options and prints the result.

- `mlpipe.api.source`: `Source` (which pipeline file, its param overrides, the settings given by flags) and
  `Selected` (which steps).
- `mlpipe.api.ci_run`: `ci_run(source, CiRunOptions(...)) -> RunResult`: plan, run or reuse, record, compare
  with the base, publish a release; `RunResult.failure` is the exit policy.
- `mlpipe.api.plan`: `plan(source, PlanOptions(...)) -> PlanResult`: run or reuse for each step, and why.

The modules are imported one by one (`from mlpipe.api.plan import plan`), so `mlpipe plan` does not import the
runner.
"""
