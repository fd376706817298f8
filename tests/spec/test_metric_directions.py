"""A metrics output's direction: for every metric in the file (`higher-is-better: true`), or per metric
(`higher-is-better: [accuracy]`, `lower-is-better: [loss]`); what `mlpipe diff` marks better or worse."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipe.errors import SpecError
from mlpipe.release.baseline import directions
from mlpipe.spec.export import export_json
from mlpipe.spec.load import load_pipeline

PIPELINE = """\
name: d
steps:
  train:
    run: x
    outputs:
      scores: {kind: metrics, higher-is-better: [accuracy, f1], lower-is-better: [loss]}
      most: {kind: metrics, higher-is-better: true, lower-is-better: [loss]}
      low: {kind: metrics, lower-is-better: true}
      plain: {kind: metrics}
"""


def load(tmp_path: Path, text: str, name: str = "mlpipe.yaml"):
    (tmp_path / ".git").mkdir(exist_ok=True)
    (tmp_path / name).write_text(text)
    return load_pipeline(tmp_path / name)


def test_each_metric_gets_its_direction(tmp_path: Path) -> None:
    outputs = load(tmp_path, PIPELINE).steps["train"].outputs

    scores, most, low, plain = outputs["scores"], outputs["most"], outputs["low"], outputs["plain"]
    assert [scores.direction(m) for m in ("accuracy", "f1", "loss", "other")] == [True, True, False, None]
    assert [most.direction(m) for m in ("accuracy", "loss")] == [True, False]
    assert [low.direction(m) for m in ("loss", "anything")] == [False, False]
    assert plain.direction("x") is None
    assert directions(load(tmp_path, PIPELINE)) == {
        ("train", "scores", "accuracy"): True,
        ("train", "scores", "f1"): True,
        ("train", "scores", "loss"): False,
        ("train", "most"): True,
        ("train", "most", "loss"): False,
        ("train", "low"): False,
    }


def test_directions_survive_export_and_import(tmp_path: Path) -> None:
    pipeline = load(tmp_path, PIPELINE)
    exported = export_json(pipeline)
    again = load(tmp_path, exported, "exported.json")
    assert again.steps["train"].outputs == {
        name: output.__class__(**{**vars(output), "loc": again.steps["train"].outputs[name].loc})
        for name, output in pipeline.steps["train"].outputs.items()
    }


def test_a_metric_in_both_lists_is_an_error_at_its_second_mention(tmp_path: Path) -> None:
    text = PIPELINE.replace("lower-is-better: [loss]}", "lower-is-better: [loss, f1]}", 1)
    with pytest.raises(SpecError) as info:
        load(tmp_path, text)
    expected = (
        "steps.train.outputs.scores.lower-is-better: metric 'f1' is listed twice; "
        "a metric has one direction: list it under one of the two keys"
    )
    assert [str(p).split(": ", 1)[1] for p in info.value.problems] == [expected]
