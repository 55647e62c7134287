"""Scan methods: how a scan is executed. Every method gives the same answer."""

from ._auto import Auto as Auto
from ._base import (
    AbstractScanMethod as AbstractScanMethod,
    act_step as act_step,
    combine_start as combine_start,
    combine_step as combine_step,
    element_like as element_like,
    emitter as emitter,
    lift_all as lift_all,
    loop as loop,
    on_elements as on_elements,
    shift as shift,
)
from ._blocked import Blocked as Blocked
from ._parallel import Parallel as Parallel
from ._registry import (
    METHODS as METHODS,
    as_method as as_method,
    register_method as register_method,
)
from ._sequential import Sequential as Sequential
from ._sharded import Sharded as Sharded
