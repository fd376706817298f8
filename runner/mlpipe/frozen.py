"""`@frozen`: a frozen dataclass whose `__setattr__` and `__delattr__` are two functions shared by every class.

`@dataclass(frozen=True)` compiles a `__setattr__` and a `__delattr__` of the class's own with `exec` when the
class is created (Python 3.11 compiles each generated method separately): two of the ~4 `exec`s of a class,
about 0.15 ms a class, which every command pays at import for each frozen class it loads (issue 18: the no-op
loads some 55). `@frozen` makes the same class with the two shared functions below instead:

- an instance is built by the generated `__init__`, which assigns each field once (`self.x = x`);
- after that, assigning a field again, any other attribute, or deleting one raises
  `dataclasses.FrozenInstanceError`, as a frozen dataclass does. (`object.__setattr__` still gets through,
  as it does there: a `__post_init__` that normalises a field uses it.)
- `__eq__`, `__hash__` (generated from the fields when `eq`, kept when the class defines its own) and
  `__repr__` are those of `@dataclass(frozen=True, ...)` with the same options.

Type checkers read it as a frozen dataclass (`typing.dataclass_transform(frozen_default=True)`), so mypy rejects
an assignment to a field. What differs from `@dataclass(frozen=True)`: `dataclasses.fields` and the rest see a
dataclass whose `__dataclass_params__.frozen` is False; a field declared `init=False` without a default could
be assigned once after `__init__` (no class here has one); and a slotted class must use `@dataclass` (its
instances have no `__dict__` to tell a field already set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")


def _assign_once(self: Any, name: str, value: Any) -> None:
    """Lets `__init__` set each field once; refuses every later assignment, as a frozen dataclass does."""
    if name in self.__dict__ or name not in type(self).__dataclass_fields__:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _no_delete(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


@overload
def frozen(cls: type[T], /) -> type[T]: ...


@overload
def frozen(*, kw_only: bool = False, eq: bool = True, repr: bool = True) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True)
def frozen(
    cls: type[T] | None = None, /, *, kw_only: bool = False, eq: bool = True, repr: bool = True
) -> type[T] | Callable[[type[T]], type[T]]:
    """`@dataclass(frozen=True, ...)` with shared `__setattr__`/`__delattr__` (see the module's docstring)."""

    def make(cls: type[T]) -> type[T]:
        own = vars(cls)
        if "__setattr__" in own or "__delattr__" in own or "__slots__" in own:
            raise TypeError(f"@frozen class {cls.__qualname__} defines __setattr__, __delattr__ or __slots__")
        # What @dataclass(frozen=True) does with __hash__: generate it from the fields when eq, unless the class
        # defines one (a class defining __eq__ alone has __hash__ = None in its dict, which does not count).
        explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
        made = dataclass(kw_only=kw_only, eq=eq, repr=repr, unsafe_hash=eq and not explicit_hash)(cls)
        made.__setattr__ = _assign_once  # type: ignore[method-assign]
        made.__delattr__ = _no_delete  # type: ignore[method-assign]
        return made

    return make if cls is None else make(cls)
