"""`python -m scanalg.bench` runs end to end on tiny sizes."""

import json

import pytest

from scanalg.bench import main, parse_lengths
from scanalg.bench._run import crossovers

pytest.importorskip("matplotlib")


def test_parse_lengths():
    assert parse_lengths("10,100") == [10, 100]
    assert parse_lengths("1e1:1e3:3") == [10, 100, 1000]


@pytest.mark.parametrize(
    "argv",
    [
        ["hmm-sample", "--sizes", "2"],
        ["lgssm-filter", "--sizes", "2"],
        ["monoid", "--monoid", "DiagonalAffine", "--sizes", "4"],
    ],
)
def test_cli_end_to_end(argv, tmp_path, capsys):
    records = main(
        [
            *argv,
            "--lengths",
            "8,16",
            "--repeats",
            "1",
            "--methods",
            "sequential,blocked",
            "--no-progress",
            "--memory",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert "device:" in out and "median ms" in out and "crossovers:" in out
    assert out.count("measured ") == len(records)  # each result printed as measured
    assert "peak/out" in out
    assert all(r["output_bytes"] > 0 and r["peak_over_output"] >= 1 for r in records)
    assert {r["entry"] for r in records} == {"sequential", "blocked"}
    assert {r["T"] for r in records} == {8, 16}
    assert all(r["min_s"] <= r["median_s"] <= r["max_s"] for r in records)
    written = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert written["device"]["backend"] == "cpu"
    assert len(written["records"]) == len(records)
    assert next(tmp_path.glob("*.png")).stat().st_size > 0


def test_crossover_interpolation():
    recs = [
        {"size": 1, "entry": "a", "T": 10, "median_s": 2.0},
        {"size": 1, "entry": "b", "T": 10, "median_s": 1.0},
        {"size": 1, "entry": "a", "T": 1000, "median_s": 1.0},
        {"size": 1, "entry": "b", "T": 1000, "median_s": 2.0},
    ]
    found = {(c["faster"], c["than"]): c["from_T"] for c in crossovers(recs)}
    assert found[("a", "b")] == 100  # log-linear midpoint
    assert found[("b", "a")] is None


def test_extra_method_names_and_serial_only_comparison():
    import scanalg
    from scanalg.bench._tasks import build, method

    assert method("associative_scan") == scanalg.Parallel(algorithm="associative_scan", leaf_size=1)
    assert method("blocked") == "blocked"
    pytest.importorskip("dynamax")
    serial = build("lgssm-filter", 8, 2, "float32", ["associative_scan"], "dynamax-serial", "")
    assert set(serial) == {"associative_scan", "dynamax-serial"}
    both = build("hmm-filter", 8, 2, "float32", ["sequential"], "dynamax", "")
    assert set(both) == {"sequential", "dynamax-serial", "dynamax-parallel"}


def test_fit_auto_threshold(tmp_path, capsys):
    from scanalg.bench import fit

    def rec(task, size, entry, T, ms):
        return {"task": task, "size": size, "entry": entry, "T": T, "median_s": ms / 1e3}

    records = [
        *(rec("hmm-filter", 5, "sequential", T, T / 100) for T in (16, 64, 256)),
        *(rec("hmm-filter", 5, "parallel", T, 0.4) for T in (16, 64, 256)),  # from 40
        *(rec("hmm-sample", 5, "sequential", T, T / 10) for T in (16, 64, 256)),
        *(rec("hmm-sample", 5, "parallel", T, 0.4) for T in (16, 64, 256)),  # at every T
    ]
    (tmp_path / "run.json").write_text(json.dumps({"records": records}))
    found = fit.parallel_crossovers(fit.load([tmp_path]))
    assert found == {("hmm-filter", 5): 40, ("hmm-sample", 5): 16}
    assert fit.main([str(tmp_path)]) == 64  # the largest crossover, rounded up
    assert "min_parallel_length=64" in capsys.readouterr().out
    assert fit.min_parallel_length({("hmm-filter", 5): None}) is None


def test_dynamax_parallel_only_comparison():
    import scanalg
    from scanalg.bench._tasks import build, method

    assert method("doubling") == scanalg.Parallel(algorithm="doubling", leaf_size=1)
    assert method("hybrid") == scanalg.Parallel(levels=6, leaf_size=1)
    pytest.importorskip("dynamax")
    only = build("hmm-filter", 8, 2, "float32", ["parallel"], "dynamax-parallel", "")
    assert set(only) == {"parallel", "dynamax-parallel"}
