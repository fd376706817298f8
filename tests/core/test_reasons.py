"""Why a step runs again, against its nearest earlier fingerprint: the sentences and where the change is."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mlpipe.core import fingerprint as fp
from mlpipe.core.reasons import Earlier, FileChange, Spot, what_changed
from mlpipe.core.results import StepResult
from mlpipe.spec.model import Location, Output, Param, Pipeline, RepoInput, Step, StepInput, UrlInput

PARAM_LINE, STEP_LINE, RAW_LINE, URL_LINE, DATA_LINE = 3, 7, 11, 12, 13
RUN_ID = "20260101T000000000Z-0123456789abcdef"
COMMIT = "c0ffee" * 6 + "abcd"
A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def loc(line: int) -> Location:
    return Location(file="mlpipe.yaml", line=line, col=5)


STEP = Step(
    name="train",
    code="train",
    run="python train.py ${{ params.lr }} ${{ inputs.raw }} ${{ inputs.weights }} ${{ inputs.data }}",
    inputs={
        "raw": RepoInput(name="raw", path="data/raw.csv", loc=loc(RAW_LINE)),
        "weights": UrlInput(
            name="weights", url="https://u:secret@example.com/w", sha256="c" * 64, loc=loc(URL_LINE)
        ),
        "data": StepInput(name="data", step="prep", output="data", loc=loc(DATA_LINE)),
    },
    outputs={"model": Output(name="model", type="dir", loc=loc(9))},
    loc=loc(STEP_LINE),
)
PIPELINE = Pipeline(
    name="demo",
    file=Path("/w/mlpipe.yaml"),
    root=Path("/w"),
    params={"lr": Param(name="lr", default=0.1, value=0.1, loc=loc(PARAM_LINE))},
    steps={"train": STEP},
)


def fingerprint(step: Step = STEP, *, lr: object = 0.1, tree: str = "1" * 40, raw: str = A) -> fp.Fingerprint:
    return fp.compute(
        step,
        params={"lr": lr} | dict(step.matrix),  # type: ignore[dict-item]
        input_digests={"raw": raw, "weights": "sha256:" + "c" * 64, "data": A},
        upstream_digests={},
        code_tree=tree,
        environment_digests={},
        platform="linux-x86_64",
    )


def earlier(source: str = "base", **kwargs: object) -> Earlier:
    return Earlier(parts=fingerprint(**kwargs).parts, source=source, run_id=RUN_ID, commit=COMMIT)  # type: ignore[arg-type]


def test_without_an_earlier_fingerprint_it_says_so() -> None:
    why = what_changed(PIPELINE, STEP, None, fingerprint(), None)
    assert (why.reasons, why.spot) == (("no stored result for this step yet",), None)


def test_a_param_change_names_both_values_and_sits_on_the_params_line_then_the_source() -> None:
    why = what_changed(PIPELINE, STEP, earlier(), fingerprint(lr=0.2), None)
    assert why.reasons == ("param lr: 0.1 -> 0.2", f"vs base run {RUN_ID} at c0ffeec0ff")
    assert why.spot == Spot(path=None, line=PARAM_LINE)


def test_the_latest_result_here_is_not_named_and_other_runs_are() -> None:
    latest = StepResult(
        fingerprint="0" * 64,
        parts=fingerprint().parts,
        outputs={},
        provenance={"run_id": RUN_ID, "commit": COMMIT},
    )
    assert what_changed(PIPELINE, STEP, Earlier.of_result(latest), fingerprint(lr=0.2), None).reasons == (
        "param lr: 0.1 -> 0.2",
    )
    other = replace(earlier("run"), commit="", dirty=True)
    assert what_changed(PIPELINE, STEP, other, fingerprint(lr=0.2), None).reasons[-1] == (
        f"vs run {RUN_ID} (dirty)"
    )


def test_a_matrix_value_sits_on_its_steps_line() -> None:
    before = replace(STEP, name="train[lr=0.3]", matrix={"lr": 0.3}, instance_of="train")
    after = replace(before, matrix={"lr": 0.5})
    why = what_changed(PIPELINE, after, earlier(step=before), fingerprint(after), None)
    assert why.reasons[0] == "param lr: 0.3 -> 0.5"
    assert why.spot == Spot(path=None, line=STEP_LINE)


def test_an_input_names_what_it_reads_and_both_digests_and_sits_on_its_line() -> None:
    why = what_changed(PIPELINE, STEP, earlier(), fingerprint(raw=B), None)
    assert why.reasons[0] == f"input raw (data/raw.csv) changed: sha256:{'a' * 12} -> sha256:{'b' * 12}"
    assert why.spot == Spot(path=None, line=RAW_LINE)


def test_a_url_input_never_prints_its_url() -> None:
    old = earlier()
    parts = {**old.parts, "inputs": {**old.parts["inputs"], "weights": "sha256:" + "d" * 64}}
    why = what_changed(PIPELINE, STEP, replace(old, parts=parts), fingerprint(), None)
    assert why.reasons[0] == f"input weights changed: sha256:{'d' * 12} -> sha256:{'c' * 12}"
    assert "secret" not in " ".join(why.reasons)


def test_a_code_change_sits_on_the_first_changed_line_of_the_first_file_still_there() -> None:
    files = [
        FileChange(change="removed", path="train/a.py"),
        FileChange(change="modified", path="train/b.py", line=4),
        FileChange(change="modified", path="train/c.py", line=9),
    ]
    why = what_changed(PIPELINE, STEP, earlier(), fingerprint(tree="2" * 40, lr=0.2), files)
    assert why.reasons[:2] == (
        "code changed: train/a.py removed, train/b.py modified, train/c.py modified",
        "param lr: 0.1 -> 0.2",
    )
    assert why.spot == Spot(path="train/b.py", line=4)


def test_code_whose_files_are_unknown_names_the_trees_and_the_notice_goes_to_the_next_change() -> None:
    why = what_changed(PIPELINE, STEP, earlier(), fingerprint(tree="2" * 40, lr=0.2), None)
    assert why.reasons[0] == "code changed (tree 1111111111 -> 2222222222)"
    assert why.spot == Spot(path=None, line=PARAM_LINE)


def test_a_param_value_is_printed_on_one_line() -> None:
    why = what_changed(PIPELINE, STEP, earlier(lr="a"), fingerprint(lr="a\nb\x1b[2J"), None)
    assert why.reasons[0] == "param lr: 'a' -> 'a\\nb\\x1b[2J'"


def test_values_from_an_earlier_record_are_cut_short() -> None:
    old = earlier(lr="x" * 10_000)
    parts = {**old.parts, "platform": "p" * 10_000}
    why = what_changed(PIPELINE, STEP, replace(old, parts=parts), fingerprint(lr=0.2), None)
    assert why.reasons[0] == f"param lr: '{'x' * 78}… -> 0.2"
    assert why.reasons[1] == f"platform changed: {'p' * 79}… -> linux-x86_64"
