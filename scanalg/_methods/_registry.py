"""The method names that `scanalg.scan(..., method="name")` accepts."""

import types
from collections.abc import Callable, Mapping

from ._auto import Auto
from ._base import AbstractScanMethod
from ._blocked import Blocked
from ._parallel import Parallel
from ._sequential import Sequential

_FACTORIES: dict[str, Callable[[], AbstractScanMethod]] = {
    "sequential": Sequential,
    "parallel": Parallel,
    "blocked": Blocked,
    "auto": Auto,
}

METHODS: Mapping[str, Callable[[], AbstractScanMethod]] = types.MappingProxyType(_FACTORIES)
"""The method names, each mapped to a factory that builds the method: a read-only view
of the registry (`"sequential"`, `"parallel"`, `"blocked"`, `"auto"`, and any name
added with `scanalg.register_method`)."""


def register_method(
    name: str, factory: Callable[[], AbstractScanMethod], *, replace: bool = False
) -> None:
    """Make `method=name` mean `factory()` in `scanalg.scan`, `scanalg.reduce` and
    everything that takes a `method`.

    **Arguments:**

    - `name`: the name, case-insensitive.
    - `factory`: called with no arguments each time the name is used; returns an
      `scanalg.AbstractScanMethod` (a method class with default arguments, or e.g.
      `lambda: scanalg.Blocked(block_size=64)`).
    - `replace`: allow replacing a registered name (otherwise that is a `ValueError`).

    **Returns:**

    Nothing.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_method(name=...) must be a non-empty str, got {name!r}.")
    if not callable(factory):
        raise TypeError(f"register_method(factory=...) must be callable, got {factory!r}.")
    key = name.lower()
    if key in _FACTORIES and not replace:
        raise ValueError(
            f"The scan method name {key!r} is already registered; pass replace=True to replace it."
        )
    _FACTORIES[key] = factory


def as_method(method: "str | AbstractScanMethod") -> AbstractScanMethod:
    """Turn a method name into a method instance, or check a given instance."""
    if isinstance(method, AbstractScanMethod):
        return method
    if isinstance(method, str):
        factory = _FACTORIES.get(method.lower())
        if factory is None:
            valid = ", ".join(repr(k) for k in _FACTORIES)
            raise ValueError(
                f"Unknown scan method {method!r}; valid names are {valid}. Pass a method "
                "instance instead (e.g. scanalg.Blocked(block_size=64)), or register a "
                "name with scanalg.register_method(name, factory)."
            )
        out = factory()
        if not isinstance(out, AbstractScanMethod):
            raise TypeError(
                f"The factory registered for the scan method {method!r} returned {out!r}, "
                "not an AbstractScanMethod."
            )
        return out
    raise TypeError(
        f"`method` must be a method name or an AbstractScanMethod instance, got {method!r}."
    )
