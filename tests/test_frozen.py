"""`@frozen` behaves as `@dataclass(frozen=True)` does, with two shared functions instead of two generated ones."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import FrozenInstanceError, dataclass, field

import pytest

from mlpipe.errors import Problem
from mlpipe.frozen import frozen


@frozen(kw_only=True)
class Point:
    """Compared and hashed by value."""

    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, kw_only=True)
class StdPoint:
    """The same class made by the standard library."""

    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)


@frozen(eq=False, repr=False)
class Handle:
    """Compared by identity."""

    name: str


@frozen
class Normalised:
    """A field normalised in `__post_init__`, the way frozen classes do it."""

    items: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(sorted(self.items)))


@frozen
class OwnHash:
    """A class with its own `__hash__` keeps it."""

    value: int

    def __hash__(self) -> int:
        return 7


def test_fields_are_set_by_init_and_compared_and_hashed_as_a_frozen_dataclass_does() -> None:
    point, std = Point(x=1, y=2, tags=("a",)), StdPoint(x=1, y=2, tags=("a",))
    assert (point.x, point.y, point.tags) == (1, 2, ("a",))
    assert point == Point(x=1, y=2, tags=("a",)) and point != Point(x=1, y=3)
    assert hash(point) == hash(std) == hash((1, 2, ("a",)))
    assert repr(point) == repr(std).replace("StdPoint", "Point")
    assert [f.name for f in dataclasses.fields(point)] == ["x", "y", "tags"]
    assert dataclasses.replace(point, y=5) == Point(x=1, y=5, tags=("a",))
    assert dataclasses.asdict(point) == {"x": 1, "y": 2, "tags": ("a",)}
    with pytest.raises(TypeError):
        Point(1)  # type: ignore[misc]  # kw_only holds


@pytest.mark.parametrize("cls", [Point, StdPoint])
def test_no_field_or_other_attribute_can_be_assigned_or_deleted_after_init(cls: type[Point]) -> None:
    point = cls(x=1)
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'x'"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'other'"):
        point.other = 2  # type: ignore[attr-defined]
    with pytest.raises(FrozenInstanceError, match="cannot delete field 'y'"):
        del point.y  # type: ignore[misc]
    assert (point.x, point.y) == (1, 0)
    assert "other" not in vars(point)


def test_identity_classes_and_own_methods_keep_their_meaning() -> None:
    first, second = Handle("a"), Handle("a")
    assert first != second and hash(first) != hash(second)
    assert "__eq__" not in vars(Handle) and "__repr__" not in vars(Handle) and "__hash__" not in vars(Handle)
    with pytest.raises(FrozenInstanceError):
        first.name = "b"  # type: ignore[misc]
    assert Normalised((3, 1, 2)).items == (1, 2, 3)
    assert hash(OwnHash(1)) == 7 and OwnHash(1) == OwnHash(1)


def test_copies_and_pickles_come_back_equal_and_still_frozen() -> None:
    point = Point(x=1, y=2, tags=("a",))
    for again in (copy.copy(point), copy.deepcopy(point), pickle.loads(pickle.dumps(point))):
        assert again == point
        with pytest.raises(FrozenInstanceError):
            again.y = 3  # type: ignore[misc]


def test_the_shared_pair_replaces_the_generated_one() -> None:
    # The point of @frozen (issue 18): no class-specific __setattr__/__delattr__ compiled at import.
    assert Point.__setattr__ is Handle.__setattr__ is Problem.__setattr__
    assert Point.__delattr__ is Handle.__delattr__ is Problem.__delattr__
    assert StdPoint.__setattr__ is not Point.__setattr__


def test_a_class_defining_setattr_or_slots_is_refused() -> None:
    with pytest.raises(TypeError, match="defines __setattr__"):

        @frozen
        class Mutable:
            """Not frozen at all."""

            x: int

            def __setattr__(self, name: str, value: object) -> None:
                object.__setattr__(self, name, value)
