"""`${{ }}` references: parsed into parts with offsets, substituted (shell-quoted for run lines), never run."""

from __future__ import annotations

import pytest

from mlpipe.spec.refs import Ref, RefSyntaxError, param_text, parse, refs, render, step_refs


def test_parse_splits_literals_and_references_with_offsets() -> None:
    template = "train --lr ${{ params.lr }} --data ${{inputs.data}} > ${{ steps.prep.outputs.out-1 }}"

    assert parse(template) == [
        "train --lr ",
        Ref("params", "lr", None, "${{ params.lr }}", 11),
        " --data ",
        Ref("inputs", "data", None, "${{inputs.data}}", 35),
        " > ",
        Ref("steps", "out-1", "prep", "${{ steps.prep.outputs.out-1 }}", 54),
    ]
    assert parse("") == []
    assert parse("no refs, $HOME and {{ x }}") == ["no refs, $HOME and {{ x }}"]
    assert parse("${{ outputs.model }}") == [Ref("outputs", "model", None, "${{ outputs.model }}", 0)]


@pytest.mark.parametrize(
    ("template", "text", "offset"),
    [
        ("a ${{ param.C }}", "${{ param.C }}", 2),
        ("${{ 1+1 }}", "${{ 1+1 }}", 0),
        ("x ${{ params.a }} ${{ steps.s.outputs }}", "${{ steps.s.outputs }}", 18),
        ("${{ params.a b }}", "${{ params.a b }}", 0),
        ("${{ params.a.b }}", "${{ params.a.b }}", 0),
        ("${{ env.HOME }}", "${{ env.HOME }}", 0),
        ("${{}}", "${{}}", 0),
        ("ok ${{ params.a }} then ${{ params.b", "${{ params.b", 24),
    ],
)
def test_malformed_expressions_raise_with_text_and_offset(template: str, text: str, offset: int) -> None:
    with pytest.raises(RefSyntaxError) as info:
        parse(template)
    assert (info.value.text, info.value.offset) == (text, offset)


def test_refs_skip_malformed_templates_and_step_refs_filter() -> None:
    template = "${{ params.a }} ${{ steps.s.outputs.o }} ${{ outputs.x }} ${{ steps.t.outputs.p }}"

    assert [r.text for r in refs(template)] == [
        "${{ params.a }}",
        "${{ steps.s.outputs.o }}",
        "${{ outputs.x }}",
        "${{ steps.t.outputs.p }}",
    ]
    assert [(r.step, r.name) for r in step_refs(template)] == [("s", "o"), ("t", "p")]
    assert list(refs("${{ params.a }} ${{ oops }}")) == []


def test_render_substitutes_and_quotes_for_the_shell() -> None:
    values = {"lr": "0.1", "data": "my data/x.csv", "o": "it's"}

    def value_of(ref: Ref) -> str:
        return values[ref.name]

    template = "run ${{ params.lr }} ${{ inputs.data }} ${{ steps.s.outputs.o }}"
    assert render(template, value_of, quote=True) == "run 0.1 'my data/x.csv' 'it'\"'\"'s'"
    assert render(template, value_of, quote=False) == "run 0.1 my data/x.csv it's"
    with pytest.raises(RefSyntaxError):
        render("${{ nope }}", value_of, quote=True)


def test_param_text() -> None:
    assert [param_text(v) for v in (True, False, 3, 0.001, 1e-7, "s")] == [
        "true",
        "false",
        "3",
        "0.001",
        "1e-07",
        "s",
    ]
