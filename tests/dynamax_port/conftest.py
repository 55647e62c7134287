"""The ported dynamax suites (`test_dynamax_*_inference.py`, `..._input_timing.py`).

Their own code (module setup, references, assertions) is dynamax's, written for JAX's
default promotion rules: it is imported and run with implicit rank and dtype promotion
allowed (`permissive`). scanalg's functions are called through
`dynamax_port_helpers`, which restores the suite's settings around every call, so
scanalg itself is tested as strictly as in the rest of the suite.
"""

import pytest
from dynamax_port_helpers import IDS, METHODS, permissive

PORTED = (
    "test_dynamax_hmm_inference.py",
    "test_dynamax_lgssm_inference.py",
    "test_dynamax_lgssm_parallel_inference.py",
    "test_dynamax_lgssm_input_timing.py",
)


def _ported(path) -> bool:
    return path.name in PORTED


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    if isinstance(collector, pytest.Module) and _ported(collector.path):
        with permissive():  # (importing the module runs dynamax's setup code)
            return (yield)
    return (yield)


@pytest.fixture(autouse=True)
def _dynamax_promotion_rules(request):
    if _ported(request.path):
        with permissive():
            yield
    else:
        yield


@pytest.fixture(scope="class", params=METHODS, ids=IDS)
def method(request):
    """The scan method under test (class-scoped: a class's quantities under test are
    computed once per method)."""
    return request.param
