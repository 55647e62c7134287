"""How often Python's cyclic garbage collector runs in the suite's processes (the
pytest workers, see `conftest.py`, and the docs runner, see `test_docs_examples.py`).

Tracing leaves many objects behind (jaxprs, compiled programs and their caches); with
the default thresholds (700, 10, 10), full collections over that heap took about a
tenth of a worker's time. Here the youngest generation is collected every 20 000
allocations, the middle one every 20 of those, and the whole heap every 100 middle
ones; what a process holds once it is set up is frozen out of the scans (`gc.freeze`).
"""

THRESHOLDS = (20_000, 20, 100)
