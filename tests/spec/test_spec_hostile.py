"""Hostile pipeline files: deep nesting, alias bombs, tags, out-of-range numbers, strings no command can take,
huge files, bytes YAML forbids. Each is a SpecError at its line:col with what is wrong and the fix, in bounded
time and memory; nothing is constructed from a tag."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

import pytest

from mlpipe.errors import SpecError
from mlpipe.spec import refs
from mlpipe.spec.load import MAX_BYTES, convert, load_pipeline

STEP = "steps:\n  a: {run: 'true'}\n"
FLATTEN = "lists and mappings nested more than 64 deep; a pipeline needs a few levels: flatten the file"
RANGE = "use an integer between -2**63 and 2**63-1, or quote it to make it a string"
FINITE = "use a finite number, or quote it to make it a string"
TYPES = "use a plain string, number, boolean, list or mapping"


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def problems(ws: Path, content: str | bytes, name: str = "mlpipe.yaml") -> list[str]:
    path = ws / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_pipeline(path)
    return [str(p) for p in info.value.problems]


def test_100000_nested_brackets_stop_at_the_depth_limit(ws: Path) -> None:
    flow = "name: x\nsteps: " + "[" * 100_000 + "]" * 100_000 + "\n"
    braces = "name: x\nsteps: " + "{a: " * 100_000 + "1" + "}" * 100_000 + "\n"

    assert problems(ws, flow) == [f"mlpipe.yaml:2:71: steps: {FLATTEN}"]
    key = f"steps{'.a' * 63}"[:117] + "..."  # a key path is cut at 120 characters
    assert problems(ws, braces) == [f"mlpipe.yaml:2:260: {key}: {FLATTEN}"]


def test_deeply_nested_block_mappings_stop_at_the_depth_limit(ws: Path) -> None:
    text = "name: x\nsteps:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(200))

    [problem] = problems(ws, text)

    # The 65th mapping down holds k63, on line 66 at column 65.
    assert problem.startswith("mlpipe.yaml:66:65: steps.k0.k1.k2.")
    assert problem.endswith(f"...: {FLATTEN}")


def test_a_deeply_nested_json_pipeline_is_refused_at_its_place(ws: Path) -> None:
    text = '{"name": "x", "steps": ' + "[" * 50_000 + "]" * 50_000 + "}"

    assert problems(ws, text, "pipeline.json") == [f"pipeline.json:1:87: steps: {FLATTEN}"]


def test_a_billion_laughs_alias_bomb_is_refused_without_expanding(ws: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    text = "\n".join(lines) + "\nname: x\nsteps: *i\n"

    # Each *d stands for 11,111 values: the 8th on e's line puts the document past 100,000.
    assert problems(ws, text) == [
        (
            "mlpipe.yaml:5:36: e: alias *d makes the document stand for more than 100000 values; "
            "write fewer aliases of large anchors"
        )
    ]


def test_an_alias_to_the_mapping_that_holds_it_is_refused(ws: Path) -> None:
    text = "base: &b {run: x, again: *b}\nname: x\n" + STEP

    assert problems(ws, text) == [
        "mlpipe.yaml:1:26: base.again: alias *b refers to a list or mapping that contains it"
    ]


def test_merges_of_a_shared_anchor_still_read(ws: Path) -> None:
    text = "name: x\nsteps:\n  a: &a {run: 'true', reuse: false}\n  b: {<<: *a, run: b}\n  c: {<<: *a}\n"
    path = ws / "mlpipe.yaml"
    path.write_text(text)

    steps = load_pipeline(path).steps

    assert [(s.name, s.run, s.reuse) for s in steps.values()] == [
        ("a", "true", False),
        ("b", "b", False),
        ("c", "true", False),
    ]


def test_no_tag_constructs_anything(ws: Path) -> None:
    marker = ws / "constructed"
    text = (
        f"name: !!python/object/apply:os.system ['touch {marker}']\n"
        "params:\n"
        f"  p: !!python/object/new:pathlib.Path ['{marker}']\n"
        "  q: !!binary aGVsbG8=\n"
        "  r: !!set {a}\n"
        "  s: !custom x\n"
        "  t: !!timestamp 2001-12-14\n" + STEP
    )

    assert problems(ws, text) == [
        f"mlpipe.yaml:1:7: name: YAML tag '!!python/object/apply:os.system' is not supported; {TYPES}",
        f"mlpipe.yaml:3:6: params.p: YAML tag '!!python/object/new:pathlib.Path' is not supported; {TYPES}",
        f"mlpipe.yaml:4:6: params.q: YAML tag '!!binary' is not supported; {TYPES}",
        f"mlpipe.yaml:5:6: params.r: YAML tag '!!set' is not supported; {TYPES}",
        f"mlpipe.yaml:6:6: params.s: YAML tag '!custom' is not supported; {TYPES}",
        f"mlpipe.yaml:7:6: params.t: YAML tag '!!timestamp' is not supported; {TYPES}",
    ]
    assert not marker.exists()


def test_core_tags_that_do_not_fit_their_value_are_refused(ws: Path) -> None:
    text = "name: !!str 007\nparams:\n  a: !!int abc\n  b: !!bool maybe\n  c: !!float 1.5\n" + STEP

    assert problems(ws, text) == [
        "mlpipe.yaml:3:6: params.a: 'abc' is not a valid !!int; write a valid !!int, or remove the tag",
        "mlpipe.yaml:4:6: params.b: 'maybe' is not a valid !!bool; write a valid !!bool, or remove the tag",
    ]


def test_an_empty_number_tag_is_refused(ws: Path) -> None:
    # PyYAML's int and float constructors index the empty text: an IndexError, once a traceback.
    text = "name: x\nparams:\n  a: !!int\n  b: !!float ''\n" + STEP

    assert problems(ws, text) == [
        "mlpipe.yaml:3:6: params.a: '' is not a valid !!int; write a valid !!int, or remove the tag",
        "mlpipe.yaml:4:6: params.b: '' is not a valid !!float; write a valid !!float, or remove the tag",
    ]


def test_a_date_or_equals_sign_that_is_not_one_is_a_string(ws: Path) -> None:
    path = ws / "mlpipe.yaml"
    path.write_text("name: 2001-13-45\nparams: {d: 2001-02-30, e: =}\n" + STEP)

    pipeline = load_pipeline(path)

    assert pipeline.name == "2001-13-45"
    assert {p.name: p.default for p in pipeline.params.values()} == {"d": "2001-02-30", "e": "="}


def test_numbers_beyond_64_bits_or_not_finite_are_refused_wherever_they_are(ws: Path) -> None:
    text = (
        "name: x\n"
        "params: {big: 9223372036854775808, small: -9223372036854775809, edge: 9223372036854775807,\n"
        "  huge: 1e999, inf: .inf, nan: .nan, digits: " + "9" * 5000 + "}\n"
        "steps:\n"
        "  a:\n"
        "    run: 'true'\n"
        "    resources: {gpus: 99999999999999999999}\n"
        "    timeout-minutes: -.inf\n"
        "    matrix: {big: [1, 18446744073709551616]}\n"
    )

    assert problems(ws, text) == [
        f"mlpipe.yaml:2:15: params.big: integer 9223372036854775808 is out of range; {RANGE}",
        f"mlpipe.yaml:2:43: params.small: integer -9223372036854775809 is out of range; {RANGE}",
        f"mlpipe.yaml:3:9: params.huge: 1e999 is not a finite number; {FINITE}",
        f"mlpipe.yaml:3:21: params.inf: .inf is not a finite number; {FINITE}",
        f"mlpipe.yaml:3:32: params.nan: .nan is not a finite number; {FINITE}",
        f"mlpipe.yaml:3:46: params.digits: integer of 5000 digits is out of range; {RANGE}",
        f"mlpipe.yaml:7:23: steps.a.resources.gpus: integer 99999999999999999999 is out of range; {RANGE}",
        f"mlpipe.yaml:8:22: steps.a.timeout-minutes: -.inf is not a finite number; {FINITE}",
        f"mlpipe.yaml:9:23: steps.a.matrix.big: integer 18446744073709551616 is out of range; {RANGE}",
    ]


def test_a_timeout_longer_than_a_year_and_a_ulimit_beyond_64_bits_are_refused(ws: Path) -> None:
    text = "name: x\nsteps:\n  a:\n    run: 'true'\n    timeout-minutes: 1e300\n    image: i\n"
    text += "    ulimits: {nofile: '99999999999999999999:99999999999999999999'}\n"

    assert problems(ws, text) == [
        (
            "mlpipe.yaml:5:22: steps.a.timeout-minutes: expected at most 525600 minutes (a year), "
            "found the number 1e300"
        ),
        (
            "mlpipe.yaml:7:23: steps.a.ulimits.nofile: expected a limit (-1: unlimited) or 'SOFT:HARD', "
            "found the string '99999999999999999999:99999999999999999999'"
        ),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e999", "expected a finite number, found '1e999'"),
        ("nan", "expected a finite number, found 'nan'"),
        ("-inf", "expected a finite number, found '-inf'"),
    ],
)
def test_overrides_out_of_range_are_refused(ws: Path, text: str, expected: str) -> None:
    path = ws / "mlpipe.yaml"
    path.write_text("name: x\nparams: {lr: 0.1, n: 3}\n" + STEP)

    with pytest.raises(SpecError) as info:
        load_pipeline(path, overrides={"lr": text, "n": "9223372036854775808"})

    assert [str(p) for p in info.value.problems] == [
        f"mlpipe.yaml:2:10: params.lr: -p lr={text}: {expected}",
        (
            "mlpipe.yaml:2:19: params.n: -p n=9223372036854775808: expected an integer between -2**63 and "
            "2**63-1, found '9223372036854775808'"
        ),
    ]


def test_convert_keeps_64_bit_integers_and_finite_numbers() -> None:
    assert convert("9223372036854775807", 1) == 2**63 - 1
    assert convert("-1e300", 0.5) == -1e300


def test_strings_with_nul_or_a_lone_surrogate_are_refused(ws: Path) -> None:
    text = 'name: "a\\0b"\nsteps:\n  a: {run: "echo \\ud800", env: {"A\\0": x}}\n'

    assert problems(ws, text) == [
        (
            "mlpipe.yaml:1:7: name: a string holds the NUL character; "
            "remove it: commands, paths and variables cannot hold it"
        ),
        (
            "mlpipe.yaml:3:12: steps.a.run: a string holds the lone surrogate \\ud800; "
            "escape the character itself (\\UXXXXXXXX), not half of a UTF-16 pair"
        ),
        (
            "mlpipe.yaml:3:33: steps.a.env: a string holds the NUL character; "
            "remove it: commands, paths and variables cannot hold it"
        ),
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"name: x\x00\n" + STEP.encode(), "mlpipe.yaml:1:8: invalid YAML: the character '\\x00' (#x0000)"),
        (
            b"name: x\n" + STEP.encode() + b"#\x1b[2J\n",
            "mlpipe.yaml:4:2: invalid YAML: the character '\\x1b' (#x001b)",
        ),
    ],
)
def test_bytes_yaml_forbids_are_located(ws: Path, raw: bytes, expected: str) -> None:
    fix = " is not allowed; remove it, or write it as an escape in a double-quoted string"

    assert problems(ws, raw) == [expected + fix]


def test_non_utf8_bytes_are_located(ws: Path) -> None:
    assert problems(ws, b"name: x\nsteps:\n  a: {run: '\xff\xfe'}\n") == [
        "mlpipe.yaml:3:1: the file is not UTF-8 text; save it as UTF-8"
    ]


def test_tabs_duplicates_and_keys_that_are_not_names(ws: Path) -> None:
    tabs = "name: x\nsteps:\n\ta: {run: x}\n"
    keys = "name: x\nsteps:\n  a: {run: x, run: y}\n  [b]: {run: x}\n  ? {c: 1}\n  : {run: x}\n"

    assert problems(ws, tabs) == [
        "mlpipe.yaml:3:1: invalid YAML: found character '\\t' that cannot start any token; near 'a: {run: x}'"
    ]
    assert problems(ws, keys) == [
        "mlpipe.yaml:3:15: steps.a.run: duplicate key 'run'; first defined at line 3",
        "mlpipe.yaml:4:3: steps: expected a name as key, found a list",
        "mlpipe.yaml:5:5: steps: expected a name as key, found a mapping",
    ]


def test_a_file_larger_than_the_bound_is_refused_without_parsing(ws: Path) -> None:
    path = ws / "mlpipe.yaml"
    with path.open("w") as stream:
        stream.write("name: x\n" + STEP)
        stream.write("#" * (MAX_BYTES + 1) + "\n")

    assert problems(ws, path.read_bytes()) == [
        (
            "mlpipe.yaml:1:1: the file is larger than 1 MiB, the most a pipeline file may be; "
            "keep data out of it: give data files as inputs"
        )
    ]


@pytest.mark.timeout(60)
def test_a_pipeline_file_that_never_ends_is_read_within_the_bound(ws: Path) -> None:
    """A FIFO fed without end stands for /dev/zero-like files: the reader stops at the bound."""
    fifo = ws / "pipe.yaml"
    os.mkfifo(fifo)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), fifo.open("wb") as stream:
            for _ in range(10 * MAX_BYTES // 65536):  # ten times the bound, then it gives up
                stream.write(b"#" * 65536)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    with pytest.raises(SpecError) as info:
        load_pipeline(fifo)
    writer.join(timeout=30)

    assert [p.message for p in info.value.problems] == [
        "the file is larger than 1 MiB, the most a pipeline file may be"
    ]
    assert not writer.is_alive()


@pytest.mark.timeout(60)
def test_a_long_run_of_unclosed_expressions_is_parsed_in_one_pass() -> None:
    template = "${{" * 300_000  # a regex that rescans after each one took hours on this

    with pytest.raises(refs.RefSyntaxError) as info:
        refs.parse(template)

    assert info.value.offset == 0 and info.value.text == template


def test_parse_keeps_reading_references_and_literals() -> None:
    parts = refs.parse("a ${{ params.x }}${{steps.s[k=1].outputs.o}} }} c")

    assert [p if isinstance(p, str) else (p.scope, p.name, p.step, p.offset) for p in parts] == [
        "a ",
        ("params", "x", None, 2),
        ("steps", "o", "s[k=1]", 17),
        " }} c",
    ]
    with pytest.raises(refs.RefSyntaxError) as info:
        refs.parse("ok ${{ params.x }} ${{{ b }}")
    assert (info.value.text, info.value.offset) == ("${{{ b }}", 19)


def test_json_pipelines_keep_json_error_messages(ws: Path) -> None:
    text = json.dumps({"name": "x", "steps": {"a": {"run": "true"}}})[:-1]

    assert problems(ws, text, "pipeline.json") == [
        'pipeline.json:1:46: invalid JSON: Expecting \',\' delimiter; near \'{"name": "x", "steps": {"a": {"run": "true"}}\''
    ]


def test_a_problem_is_one_printable_line_whatever_the_keys_hold(ws: Path) -> None:
    """Found by tests/faults/test_spec_fuzz.py: a key path is made of the file's key names, and a key written
    `"a\\nb"` broke the problem over two lines (an ESC in one could rewrite the terminal)."""
    text = 'name: x\nparams:\n  "lr\\nmlpipe.yaml:1:1: forged": 1\n  "\\e[2J": 2\nsteps:\n  a: {run: x}\n'

    assert problems(ws, text) == [
        (
            "mlpipe.yaml:3:3: params.lr\\nmlpipe.yaml:1:1: forged: invalid param name 'lr\\nmlpipe.yaml:1:1: "
            "forged'; use letters, digits, '_' and '-', starting with a letter or '_'"
        ),
        (
            "mlpipe.yaml:4:3: params.\\x1b[2J: invalid param name '\\x1b[2J'; use letters, digits, '_' and '-', "
            "starting with a letter or '_'"
        ),
    ]


def test_an_exported_pipeline_with_characters_beyond_the_bmp_loads_back(ws: Path) -> None:
    """Found by the fuzzer: json.dumps writes U+1F600 as the pair "\\ud83d\\ude00", which PyYAML read as two
    lone surrogates, so an exported pipeline did not load back as itself."""
    from mlpipe.spec.export import export_json

    path = ws / "mlpipe.yaml"
    path.write_text(
        "name: demo 😀 𐀀\nsteps:\n  a: {run: echo 😀, env: {E: '\U0010ffff'}}\n", encoding="utf-8"
    )
    exported = export_json(load_pipeline(path))
    assert "\\ud83d\\ude00" in exported
    (ws / "pipeline.json").write_text(exported)

    again = load_pipeline(ws / "pipeline.json")

    assert (again.name, again.steps["a"].run, dict(again.steps["a"].env)) == (
        "demo 😀 𐀀",
        "echo 😀",
        {"E": "\U0010ffff"},
    )
    assert export_json(again) == exported


def test_a_merge_key_written_as_a_value_is_its_text(ws: Path) -> None:
    """Found by the fuzzer: `<<` is tagged as a merge wherever it stands, and PyYAML cannot construct one, so
    `name: <<` was a traceback."""
    path = ws / "mlpipe.yaml"
    path.write_text("name: <<\nsteps:\n  a: {run: <<, env: {A: <<}}\n")

    pipeline = load_pipeline(path)

    assert (pipeline.name, pipeline.steps["a"].run, dict(pipeline.steps["a"].env)) == (
        "<<",
        "<<",
        {"A": "<<"},
    )


def test_a_file_of_more_values_than_the_bound_stops_where_it_crosses_it(ws: Path) -> None:
    text = "name: x\nsteps:\n  a: {run: x, needs: [" + ", ".join(["b"] * 100_000) + "]}\n"

    # A value counts once it is whole: 7 scalars come before the items (the mappings and the list are not
    # whole yet), so the 99,994th item, at column 23 + 3 * 99,993, crosses 100,000.
    assert problems(ws, text) == [
        (
            f"mlpipe.yaml:3:{23 + 3 * 99_993}: steps.a.needs: the file holds more than 100000 values; "
            "a pipeline is far smaller: keep data out of it"
        )
    ]


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (lambda p: p.write_text('{"format": ' + "[" * 10_000 + "]" * 10_000 + "}"), "invalid JSON: nested too deep"),
        (lambda p: p.write_bytes(b'{"format": "\xff"}'), "not UTF-8 text"),
        (lambda p: p.write_text(" " * (64 << 10) + "{}"), "larger than 64 KiB, which no data file written by mlpipe is"),
        (lambda p: p.mkdir(), "cannot read it: Is a directory"),
    ],
)  # fmt: skip
def test_a_hostile_data_file_named_as_an_input_is_a_located_problem(ws: Path, write, reason: str) -> None:
    """A `*.mlpipe-data.json` is committed with the pipeline and read while loading it."""
    write(ws / "raw.mlpipe-data.json")

    assert problems(ws, "name: x\nsteps:\n  a: {run: x, inputs: {raw: raw.mlpipe-data.json}}\n") == [
        (
            f"mlpipe.yaml:3:29: steps.a.inputs.raw: data file 'raw.mlpipe-data.json' is not valid: {reason}; "
            "run `mlpipe data add raw` again"
        )
    ]


def test_a_deeply_nested_mlpipe_toml_is_a_usage_error(ws: Path) -> None:
    from mlpipe.config import read_config
    from mlpipe.errors import UsageError

    (ws / "mlpipe.toml").write_text("jobs = " + "[" * 100_000 + "]" * 100_000 + "\n")

    with pytest.raises(UsageError) as info:
        read_config(ws / "mlpipe.toml", "mlpipe.toml")

    assert str(info.value) == "mlpipe.toml: invalid TOML: arrays or tables nested too deep; flatten them"


def test_a_long_name_above_many_problems_is_cut_and_the_problems_are_capped(ws: Path) -> None:
    """A 100 KB key was copied into the key path of every node below it and into every problem: a 1 MB
    file with 15,000 entries under a 400 KB key took 24 GB. Names in key paths are cut at 64 characters,
    texts at 500, and past 200 problems the rest are counted."""
    name = "x" * 100_000
    env = "".join(f"      V{i}: ${{{{ params.p{i} }}}}\n" for i in range(5000))
    text = f"name: x\nsteps:\n  ? {name}\n  : run: x\n    env:\n{env}"

    found = problems(ws, text)

    assert len(found) == 201
    assert found[:3] == [
        f"mlpipe.yaml:3:5: steps.{'x' * 61}...: step name of 100000 characters; use at most 100",
        f"mlpipe.yaml:6:11: steps.{'x' * 61}....env.V0: no param 'p0'",
        f"mlpipe.yaml:7:11: steps.{'x' * 61}....env.V1: no param 'p1'",
    ]
    assert found[-1] == "mlpipe.yaml:204:13: and 4801 more problems; fix the ones above first"
