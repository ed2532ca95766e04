"""benchmarks/mutation.py's score: what counts as killed, what is left out (issue 19)."""

from __future__ import annotations

import json
import shutil

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


def _fake_checkout(root, source_text="def f():\n    return 1\n"):
    (root / "m2nist_utils").mkdir(parents=True, exist_ok=True)
    (root / "m2nist_utils" / "arrays.py").write_text(source_text)
    (root / "results").mkdir(exist_ok=True)
    meta = root / "mutants" / "m2nist_utils" / "arrays.py.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "exit_code_by_key": {"m2nist_utils.arrays.x_f__mutmut_1": 1, "m2nist_utils.arrays.x_f__mutmut_2": 0},
        "hash_by_function_name": {"x_f": "abc"},
        "type_check_error_by_key": {},
        "durations_by_key": {"m2nist_utils.arrays.x_f__mutmut_1": 2.5},
        "estimated_durations_by_key": {},
    }
    meta.write_text(json.dumps(record))
    confirmed = {
        "m2nist_utils.arrays.x_f__mutmut_2": "killed",
        "m2nist_utils.pipeline.x_g__mutmut_1": "killed",
    }
    (root / "mutants" / "confirmed.json").write_text(json.dumps(confirmed))
    return meta, record


def test_results_kept_in_the_results_folder_come_back_in_a_fresh_checkout(mutation, tmp_path, monkeypatch):
    monkeypatch.setattr(mutation, "REPO", tmp_path)
    meta, record = _fake_checkout(tmp_path)
    mutation.save_state()
    shutil.rmtree(tmp_path / "mutants")  # a fresh checkout: mutants/ is git-ignored
    assert mutation.restore_state() == ["m2nist_utils/arrays.py"]
    restored = json.loads(meta.read_text())
    assert restored["exit_code_by_key"] == record["exit_code_by_key"]
    assert restored["hash_by_function_name"] == record["hash_by_function_name"]
    confirmed = json.loads((tmp_path / "mutants" / "confirmed.json").read_text())
    assert confirmed == {"m2nist_utils.arrays.x_f__mutmut_2": "killed"}  # only the restored file's


def test_results_of_a_changed_source_are_not_restored(mutation, tmp_path, monkeypatch):
    monkeypatch.setattr(mutation, "REPO", tmp_path)
    meta, _ = _fake_checkout(tmp_path)
    mutation.save_state()
    shutil.rmtree(tmp_path / "mutants")
    (tmp_path / "m2nist_utils" / "arrays.py").write_text("def f():\n    return 2\n")
    assert mutation.restore_state() == [] and not meta.exists()


def test_a_restore_leaves_what_mutants_already_holds(mutation, tmp_path, monkeypatch):
    monkeypatch.setattr(mutation, "REPO", tmp_path)
    meta, record = _fake_checkout(tmp_path)
    mutation.save_state()
    newer = {**record, "exit_code_by_key": {"m2nist_utils.arrays.x_f__mutmut_1": 0}}
    meta.write_text(json.dumps(newer))
    assert mutation.restore_state() == []
    assert json.loads(meta.read_text()) == newer


def test_resume_names_only_the_mutants_left_and_whole_files_never_run(mutation):
    patterns = ["m2nist_utils.arrays.*", "m2nist_utils.pipeline.*"]
    left = mutation.still_to_check(STATUSES, patterns, {"not checked"}, unknown_whole=True)
    assert left == ["m2nist_utils.arrays.x__size__mutmut_2", "m2nist_utils.pipeline.*"]
    survivors = mutation.still_to_check(STATUSES, patterns, {"survived"}, unknown_whole=False)
    assert survivors == ["m2nist_utils.arrays.x_load_npy__mutmut_3", "m2nist_utils.arrays.x__size__mutmut_1"]
