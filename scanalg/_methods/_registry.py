"""The method-name registry: `scanalg.scan(..., method="name")`."""

from ._auto import Auto
from ._base import AbstractScanMethod
from ._blocked import Blocked
from ._parallel import Parallel
from ._sequential import Sequential

METHODS: dict[str, type[AbstractScanMethod]] = {
    "sequential": Sequential,
    "parallel": Parallel,
    "blocked": Blocked,
    "auto": Auto,
}


def as_method(method: "str | AbstractScanMethod") -> AbstractScanMethod:
    """Turn a method name into a method instance, or check a given instance."""
    if isinstance(method, AbstractScanMethod):
        return method
    if isinstance(method, str):
        try:
            return METHODS[method.lower()]()
        except KeyError:
            pass
        valid = ", ".join(repr(k) for k in METHODS)
        raise ValueError(f"Unknown scan method {method!r}; valid names are {valid}.")
    raise TypeError(
        f"`method` must be a method name or an AbstractScanMethod instance, got {method!r}."
    )
