"""JSON read from a stream a value at a time, so a record with a list of 100,000 entries never holds it parsed
whole: the caller walks the objects and arrays it expects (`members`, `items`) and parses every other value at
once (`value`, json's C scanner). What it accepts is what `json.loads` accepts of UTF-8 (NaN and Infinity
included; the last of duplicate keys is the caller's to keep); anything else is records.BadRecord.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from mlpipe.records import BadRecord, json_object, obj

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_READ = 1 << 20
_AFTER = frozenset(",]}: \t\n\r")


class Scanner:
    """A JSON text read through `read(n)` (a file's or a BytesIO's), at most about twice its largest value held."""

    def __init__(self, read: Callable[[int], bytes], what: str) -> None:
        self.what = what
        self._read = read
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._text = ""
        self._pos = 0
        self._eof = False
        self._dropped = 0
        """Characters read and let go before `_text`, and the newlines among them (for json's error positions)."""
        self._lines = 0
        self._line_start = 0

    def _more(self) -> bool:
        """Read on (as much again as is held, so a large value is parsed a bounded number of times)."""
        if self._eof:
            return False
        chunk = self._read(max(_READ, len(self._text) - self._pos))
        try:
            text = self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as error:
            raise BadRecord(self.what, f"not JSON ({error.reason} at byte {error.start})") from None
        self._eof = not chunk
        last = self._text.rfind("\n", 0, self._pos)
        if last >= 0:
            self._lines += self._text.count("\n", 0, self._pos)
            self._line_start = self._dropped + last + 1
        self._dropped += self._pos
        self._text = self._text[self._pos :] + text
        self._pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space, not consumed; '' at the end."""
        while True:
            self._pos = _WHITESPACE.match(self._text, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._text):
                return self._text[self._pos]
            if not self._more():
                return ""

    def value(self) -> Any:
        """The next value, parsed whole."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self._text, self._pos)
            except RecursionError:
                raise BadRecord(self.what, "nested too deeply") from None
            except json.JSONDecodeError as error:
                if self._more():
                    continue
                raise self._error(error.msg, error.pos) from None
            except ValueError as error:  # more digits than int() converts
                raise BadRecord(self.what, f"not JSON ({str(error)[:100]})") from None
            # A number may go on past what has been read ("2." of "2.5e3"): a value is whole once a delimiter
            # follows it, or the text ends.
            if (end < len(self._text) and self._text[end] in _AFTER) or not self._more():
                self._pos = end
                return value

    def _error(self, message: str, pos: int) -> BadRecord:
        """As json.loads words a syntax error, positions counted from the start of the text."""
        at = self._dropped + pos
        lines, line_start = self._lines, self._line_start
        newlines = self._text.count("\n", 0, pos)
        if newlines:
            lines += newlines
            line_start = self._dropped + self._text.rfind("\n", 0, pos) + 1
        return BadRecord(
            self.what, f"not JSON ({message}: line {lines + 1} column {at - line_start + 1} (char {at}))"
        )

    def _take(self, char: str, message: str) -> None:
        if self.peek() != char:
            raise self._error(message, self._pos)
        self._pos += 1

    def members(self, where: str) -> Iterator[str]:
        """An object's keys in order; after each, the caller reads its value (`value`, or walks it). A value
        that is not an object is BadRecord, as records.obj says it."""
        if self.peek() != "{":
            value = self.value()
            if where == self.what:  # the record itself
                json_object(value, where)
            obj(value, where)
        self._pos += 1
        if self._empty("}"):
            return
        while True:
            if self.peek() != '"':
                raise self._error("Expecting property name enclosed in double quotes", self._pos)
            key = self.value()
            self._take(":", "Expecting ':' delimiter")
            yield key
            if not self._more_items("}"):
                return

    def items(self, where: str, check: Callable[[Any, str], Any]) -> Iterator[int]:
        """An array's indexes in order; after each, the caller reads its element. A value that is not an array
        is handed to `check` (records.array), which raises."""
        if self.peek() != "[":
            check(self.value(), where)
        self._pos += 1
        index = 0
        if self._empty("]"):
            return
        while True:
            yield index
            index += 1
            if not self._more_items("]"):
                return

    def _empty(self, close: str) -> bool:
        """At an object's or array's end right after it opened: consumed."""
        if self.peek() == close:
            self._pos += 1
            return True
        return False

    def _more_items(self, close: str) -> bool:
        """After a member or element: True past a ',', False past the `close` that ends them."""
        if self.peek() == ",":
            self._pos += 1
            return True
        self._take(close, "Expecting ',' delimiter")
        return False

    def end(self) -> None:
        """Nothing but white space is left."""
        if self.peek():
            raise self._error("Extra data", self._pos)
