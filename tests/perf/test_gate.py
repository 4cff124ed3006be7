"""The perf gate's comparison logic (``vlparity.perf.gate``) and the normalised figure it reads
(``vlparity.perf.reference``): pure functions, no timing goals (those are met in the benchmarks)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlparity.perf.gate import (
    FASTER,
    OK,
    REGRESSED,
    Figure,
    GateInputError,
    compare,
    figures_from_json,
    format_table,
    limit_for,
    main,
)
from vlparity.perf.reference import Interleaved, planted_slowdown, reference_workload, relative_iqr

RECORDED = Path(__file__).parent / "data"

names = st.text(alphabet="abcdefghij_[]-", min_size=1, max_size=12)
values = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False)
spreads = st.floats(min_value=0, max_value=2, allow_nan=False)
figure_sets = st.dictionaries(names, st.tuples(values, spreads), min_size=1, max_size=8)


def _figures(entries: dict[str, tuple[float, float]], scale: dict[str, float] | None = None) -> dict[str, Figure]:
    scale = scale or {}
    return {name: Figure(name, value * scale.get(name, 1.0), iqr, 30) for name, (value, iqr) in entries.items()}


def _document(figures: dict[str, tuple[float, float]], recorded_only: tuple[str, ...] = ()) -> dict:
    benchmarks = [
        {"fullname": f"tests/perf/test_stages.py::{name}", "name": name,
         "extra_info": {"gated": True, "normalised_min": value, "normalised_rel_iqr": iqr, "normalised_rounds": 30}}
        for name, (value, iqr) in figures.items()
    ] + [{"fullname": name, "name": name, "extra_info": {"stage": "load"}} for name in recorded_only]  # fmt: skip
    return {"benchmarks": benchmarks}


@given(figure_sets)
def test_a_run_identical_to_its_baseline_passes(entries) -> None:
    rows = compare(_figures(entries), _figures(entries))
    assert [row.verdict for row in rows] == [OK] * len(entries)
    assert all(row.change == 0 for row in rows)


@given(figure_sets, st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=3), st.data())
def test_exactly_the_benchmarks_slowed_beyond_their_limit_regress(entries, floor, k, data) -> None:
    baseline = _figures(entries)
    factors = {name: data.draw(st.floats(min_value=0.2, max_value=5), label=name) for name in entries}
    rows = compare(baseline, _figures(entries, factors), floor, k)
    for row in rows:
        limit = limit_for(baseline[row.name], floor, k)
        assert row.limit == limit >= floor and limit >= k * baseline[row.name].rel_iqr
        change = factors[row.name] - 1
        if change > limit * (1 + 1e-9) + 1e-9:
            assert row.verdict == REGRESSED
        elif change < limit * (1 - 1e-9) - 1e-9:
            assert row.verdict != REGRESSED
        if change < -limit - 1e-9:
            assert row.verdict == FASTER


@given(spreads, st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=3))
def test_the_limit_is_the_floor_or_k_times_the_baseline_spread(iqr, floor, k) -> None:
    assert limit_for(Figure("b", 1.0, iqr, 30), floor, k) == max(floor, k * iqr)


@given(figure_sets, names)
def test_a_benchmark_gated_on_one_side_only_is_bad_input_naming_it(entries, extra) -> None:
    baseline = _figures(entries)
    new = f"~{extra}"  # "~" is not in the generated names: never one of the baseline's
    current = {**baseline, new: Figure(new, 1.0, 0.0, 30)}
    with pytest.raises(GateInputError, match=r"missing in the baseline: .*~"):
        compare(baseline, current)
    with pytest.raises(GateInputError, match=r"missing in the current run: .*~"):
        compare(current, baseline)


def test_recorded_only_benchmarks_are_not_compared() -> None:
    figures = figures_from_json(_document({"test_prefill[split]": (3.0, 0.1)}, ("test_load[split]",)), "x.json")
    assert list(figures) == ["tests/perf/test_stages.py::test_prefill[split]"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"machine_info": {}}, "not a pytest-benchmark JSON"),
        (_document({}, ("test_load[split]",)), "no gated benchmark"),
        ({"benchmarks": [{"name": "b", "extra_info": {"gated": True, "normalised_min": 0}}]}, "b has no valid"),
    ],
)
def test_malformed_documents_are_bad_input(document, message) -> None:
    with pytest.raises(GateInputError, match=message):
        figures_from_json(document, "run.json")


def test_the_table_has_one_row_per_benchmark_with_its_verdict() -> None:
    rows = compare(_figures({"a": (1.0, 0.05), "b": (2.0, 0.5)}), _figures({"a": (1.5, 0.05), "b": (2.4, 0.5)}))
    table = format_table(rows).splitlines()
    assert table[0].split() == ["benchmark", "baseline", "current", "change", "limit", "verdict"]
    assert table[2].split() == ["a", "1", "1.5", "+50.0%", "20%", REGRESSED]
    assert table[3].split() == ["b", "2", "2.4", "+20.0%", "50%", OK]


def test_exit_codes(tmp_path: Path, capsys) -> None:
    baseline, same, slower, other = (tmp_path / f"{name}.json" for name in ("baseline", "same", "slower", "other"))
    baseline.write_text(json.dumps(_document({"a": (1.0, 0.02), "b": (2.0, 0.02)})))
    same.write_text(json.dumps(_document({"a": (1.05, 0.02), "b": (1.9, 0.02)})))
    slower.write_text(json.dumps(_document({"a": (1.6, 0.02), "b": (2.0, 0.02)})))
    other.write_text(json.dumps(_document({"a": (1.0, 0.02)})))
    assert main(["--baseline", str(baseline), "--current", str(same)]) == 0
    assert main(["--baseline", str(baseline), "--current", str(slower)]) == 1
    assert "1 of 2 gated benchmarks regressed" in capsys.readouterr().out
    scattered = tmp_path / "scattered.json"
    scattered.write_text(json.dumps(_document({"a": (1.0, 0.02), "b": (2.0, 0.8)})))
    assert main(["--baseline", str(scattered), "--current", str(scattered)]) == 0
    assert "a 1.5× slowdown would pass): b" in capsys.readouterr().out
    assert main(["--baseline", str(baseline), "--current", str(other)]) == 2
    assert "missing in the current run: tests/perf/test_stages.py::b" in capsys.readouterr().err
    assert main(["--baseline", str(tmp_path / "absent.json"), "--current", str(same)]) == 2
    assert "absent.json: no such file" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{")
    assert main(["--baseline", str(tmp_path / "broken.json"), "--current", str(same)]) == 2


@given(st.lists(st.floats(min_value=1e-4, max_value=1.0), min_size=1, max_size=40), st.floats(1.5, 3.0))
def test_the_normalised_figures_are_round_over_reference_ratios(rounds, scale) -> None:
    interleaved = Interleaved("python")
    interleaved.reference_s = [99.0] + [duration / scale for duration in rounds]  # one warm-up reference first
    figure = interleaved.figure(rounds, gated=True)
    assert figure["normalised"] == pytest.approx(scale) and figure["normalised_min"] == pytest.approx(scale)
    assert figure["normalised_rel_iqr"] == pytest.approx(0, abs=1e-9)
    assert figure["normalised_rounds"] == len(rounds) and figure["gated"] is True


def test_the_gated_figure_ignores_rounds_that_noise_slowed() -> None:
    """Noise only adds time: a few slow rounds move neither the fastest round nor the figure."""
    interleaved = Interleaved("python")
    interleaved.reference_s = [1.0] * 10
    clean = interleaved.figure([2.0] * 10, gated=True)["normalised_min"]
    noisy = interleaved.figure([2.0] * 6 + [3.0] * 4, gated=True)["normalised_min"]
    assert clean == noisy == 2.0


def test_runs_with_other_thread_counts_are_not_compared() -> None:
    baseline = {"a": Figure("a", 1.0, 0.0, 30, threads=1)}
    with pytest.raises(GateInputError, match="--perf-threads 1 in the baseline and 0 now"):
        compare(baseline, {"a": Figure("a", 1.0, 0.0, 30, threads=0)})


def test_relative_iqr() -> None:
    assert relative_iqr([1.0]) == 0.0
    assert relative_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2.0 / 3.0)


@pytest.mark.parametrize("kind", ["python", "torch", "ort"])
def test_every_reference_workload_runs(kind: str) -> None:
    reference_workload(kind)()
    with pytest.raises(ValueError, match="unknown reference kind"):
        reference_workload("gpu")


def test_a_planted_slowdown_does_its_extra_work() -> None:
    started = time.perf_counter()
    assert planted_slowdown(lambda: time.sleep(0.01) or "done", 3.0)() == "done"
    assert time.perf_counter() - started >= 0.03
    with pytest.raises(ValueError):
        planted_slowdown(lambda: None, 0.5)


def _flagged(output: str) -> set[str]:
    return {line.split()[0] for line in output.splitlines() if line.endswith(REGRESSED)}


@pytest.mark.skipif(not (RECORDED / "baseline.json").is_file(), reason="recorded runs not present")
def test_recorded_runs_the_planted_slowdowns_are_flagged_and_a_same_commit_run_passes(capsys) -> None:
    """Figures recorded on the 2-core VM (docs/perf-notes.md, trimmed; ``--perf-threads 1``): the run with
    ``VLPARITY_PERF_SLOWDOWN`` (1.5× on three benchmarks) fails on exactly the planted ones; the first back-to-back
    run at the baseline's commit passes."""
    baseline = str(RECORDED / "baseline.json")
    assert main(["--baseline", baseline, "--current", str(RECORDED / "planted.json")]) == 1
    planted = set(json.loads((RECORDED / "planted.json").read_text())["planted"])
    assert _flagged(capsys.readouterr().out) == planted
    assert main(["--baseline", baseline, "--current", str(RECORDED / "same-commit.json")]) == 0
    assert not _flagged(capsys.readouterr().out)
