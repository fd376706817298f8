"""`-p NAME=VALUE` overrides of params' defaults: parsed, converted to each param's type, and applied to a loaded
pipeline. Without YAML, so a pipeline rebuilt from the parsed-pipeline cache takes its overrides here."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from mlpipe.errors import UsageError
from mlpipe.spec.model import ParamValue, Pipeline
from mlpipe.spec.refs import NAME as NAME_PATTERN

INT64 = range(-(2**63), 2**63)
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
NAME = re.compile(NAME_PATTERN)


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """`["lr=0.1", ...]` -> `{"lr": "0.1"}`; the last of repeated names wins."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not NAME.fullmatch(name.strip()):
            raise UsageError(f"-p {item}: expected NAME=VALUE, e.g. -p lr=0.01")
        out[name.strip()] = value
    return out


def convert(text: str, default: ParamValue) -> ParamValue:
    """A `-p` value in the type of the param's default; ValueError says what was expected."""
    if isinstance(default, bool):
        word = text.strip().lower()
        if word in TRUE | FALSE:
            return word in TRUE
        raise ValueError("true or false (or yes/no, 1/0)")
    if isinstance(default, str):
        return text
    try:
        number = int(text.strip()) if isinstance(default, int) else float(text)
    except ValueError:
        raise ValueError("an integer" if isinstance(default, int) else "a number") from None
    if isinstance(number, int) and number not in INT64:
        raise ValueError("an integer between -2**63 and 2**63-1")
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError("a finite number")
    return number


def with_overrides(pipeline: Pipeline, overrides: Mapping[str, str]) -> Pipeline | None:
    """The pipeline with each override applied, as the loader applies them; None when one of them is a mistake
    (no such param, a value of the wrong type): only the loader can say where, so the caller loads the file."""
    params = dict(pipeline.params)
    for name, text in overrides.items():
        if name not in params:
            return None
        try:
            params[name] = replace(params[name], value=convert(text, params[name].default))
        except ValueError:
            return None
    return replace(pipeline, params=params) if overrides else pipeline
