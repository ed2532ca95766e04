"""benchmarks/mutation.py's score: what counts as killed, what is left out (issue 19)."""

from __future__ import annotations

import json

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def mutation():
    return load_benchmark("mutation")


STATUSES = {
    "m2nist_utils.arrays.x_load_npy__mutmut_1": "killed",
    "m2nist_utils.arrays.x_load_npy__mutmut_2": "timeout",
    "m2nist_utils.arrays.x_load_npy__mutmut_3": "survived",
    "m2nist_utils.arrays.x__size__mutmut_1": "survived",
    "m2nist_utils.arrays.x__size__mutmut_2": "not checked",
    "m2nist_utils.metrics.x_iou__mutmut_1": "killed",
}


def test_timeouts_count_as_killed_and_unchecked_mutants_not_at_all(mutation):
    row = mutation.score(STATUSES, ["m2nist_utils.arrays.*"])
    assert row["mutants"] == 5 and row["killed"] == 2 and row["survived"] == 2 and row["score"] == 0.5
    assert row["counts"] == {"killed": 1, "not checked": 1, "survived": 2, "timeout": 1}
    assert row["survivors"] == [
        "m2nist_utils.arrays.x__size__mutmut_1",
        "m2nist_utils.arrays.x_load_npy__mutmut_3",
    ]


def test_equivalent_mutants_are_left_out_of_the_score(mutation, monkeypatch):
    monkeypatch.setattr(mutation, "EQUIVALENT", {"m2nist_utils.arrays.x__size__mutmut_1": "same output"})
    row = mutation.score(STATUSES, ["m2nist_utils.arrays.*"])
    assert row["equivalent"] == ["m2nist_utils.arrays.x__size__mutmut_1"]
    assert row["survived"] == 1 and row["score"] == pytest.approx(2 / 3, abs=1e-4)
    assert "m2nist_utils.arrays.x__size__mutmut_1" not in row["survivors"]


def test_a_target_without_checked_mutants_has_no_score(mutation):
    assert mutation.score(STATUSES, ["m2nist_utils.pipeline.*"])["score"] is None


def test_a_run_of_some_targets_keeps_the_committed_rows_of_the_others(mutation, tmp_path, monkeypatch):
    committed = {"modules": {"arrays": {"score": 0.9, "commit": "old"}, "metrics": {"score": 1.0}}}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mutation.json").write_text(json.dumps(committed))
    monkeypatch.setattr(mutation, "REPO", tmp_path)
    modules = mutation.merged_modules(STATUSES, ["metrics"], commit="abc1234")
    assert modules["arrays"] == {"score": 0.9, "commit": "old"}
    assert modules["metrics"]["killed"] == 1 and modules["metrics"]["commit"] == "abc1234"
    assert modules["pipeline"]["score"] is None  # not run, not committed: scored from what mutmut holds


def test_a_survivor_its_test_files_kill_counts_as_killed_and_says_so(mutation, tmp_path, monkeypatch):
    (tmp_path / "mutants").mkdir()
    confirmed = {
        "m2nist_utils.arrays.x_load_npy__mutmut_3": "killed",
        "m2nist_utils.arrays.x__size__mutmut_1": "survived",
    }
    (tmp_path / "mutants" / "confirmed.json").write_text(json.dumps(confirmed))
    monkeypatch.setattr(mutation, "REPO", tmp_path)
    statuses = mutation.with_confirmed(STATUSES)
    assert statuses["m2nist_utils.arrays.x_load_npy__mutmut_3"] == "killed by its test files"
    assert statuses["m2nist_utils.arrays.x__size__mutmut_1"] == "survived"
    row = mutation.score(statuses, ["m2nist_utils.arrays.*"])
    assert row["killed"] == 3 and row["survived"] == 1 and row["score"] == 0.75
