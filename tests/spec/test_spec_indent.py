"""An indentation slip in `mlpipe.yaml` is reported as one hint about indentation, not as the cascade of
problems that the misread structure causes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipe.errors import SpecError
from mlpipe.spec.load import load_pipeline

GOOD = """\
name: t
steps:
  prepare:
    run: python prepare.py --out ${{ outputs.data }}
    outputs:
      data: {}
  train:
    run: python train.py --data ${{ inputs.data }} --out ${{ outputs.model }}
    inputs:
      data: ${{ steps.prepare.outputs.data }}
    outputs:
      model: {type: file}
"""


def slipped(line: int, indent: int) -> str:
    """GOOD with line `line` (1-based) indented by `indent` spaces instead."""
    lines = GOOD.splitlines(keepends=True)
    lines[line - 1] = " " * indent + lines[line - 1].lstrip(" ")
    return "".join(lines)


def errors(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / ".git").mkdir(exist_ok=True)
    path = tmp_path / "mlpipe.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_pipeline(path)
    return [str(p).replace(str(path), "mlpipe.yaml") for p in info.value.problems]


def test_the_good_file_loads(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "mlpipe.yaml").write_text(GOOD)
    assert list(load_pipeline(tmp_path / "mlpipe.yaml").steps) == ["prepare", "train"]


def test_a_mappings_content_left_at_its_keys_column_is_one_hint(tmp_path: Path) -> None:
    expected = (
        "mlpipe.yaml:9:5: 'inputs:' has nothing under it, and the next line (10: 'data:') starts at the same "
        "column (5), so YAML reads it as a sibling of 'inputs', not its content; indent the lines that belong "
        "to 'inputs' further than 'inputs:' (e.g. 6 spaces); the other problems may all come from this"
    )
    assert errors(tmp_path, slipped(10, 4)) == [expected]


def test_a_steps_keys_written_at_its_names_column_are_one_hint(tmp_path: Path) -> None:
    text = GOOD.replace("\n    run: python train", "\n  run: python train")
    text = text.replace("\n    inputs:\n      data", "\n  inputs:\n    data")
    text = text.replace("\n    outputs:\n      model", "\n  outputs:\n    model")
    expected = (
        "mlpipe.yaml:7:3: 'train:' has nothing under it, and the next line (8: 'run:') starts at the same "
        "column (3), so YAML reads it as a sibling of 'train', not its content; indent the lines that belong "
        "to 'train' further than 'train:' (e.g. 4 spaces); the other problems may all come from this"
    )
    assert errors(tmp_path, text) == [expected]


@pytest.mark.parametrize(("indent", "above"), [(3, 5), (6, 5)])
def test_a_key_out_of_line_with_its_siblings_says_which_columns_differ(
    tmp_path: Path, indent: int, above: int
) -> None:
    (problem,) = errors(tmp_path, slipped(9, indent))
    assert problem.startswith("mlpipe.yaml:9:")
    assert problem.endswith(
        f"near 'inputs:'; line 9 starts at column {indent + 1} but the key above it at column {above}: the "
        "keys of one mapping must start at the same column; line it up with its siblings"
    ), problem


def test_an_empty_value_that_is_not_a_slip_is_reported_as_before(tmp_path: Path) -> None:
    text = GOOD.replace("    outputs:\n      model: {type: file}\n", "    outputs:\n")
    text = text.replace("--out ${{ outputs.model }}", "")
    assert errors(tmp_path, text) == [
        "mlpipe.yaml:11:13: steps.train.outputs: expected a mapping, found null"
    ]
