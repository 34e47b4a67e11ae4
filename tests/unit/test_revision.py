"""isolharness series, the pure parts: checkpatch totals (recorded real
output), baseline comparison (a recorded real summary.json), the series'
commits and a git range of a scratch repository (real git)."""

import copy
import json
from pathlib import Path

import pytest
from gitrepo import git, make_repo

from harness.baseline import compare, load_summary_json, render_comparison
from harness.checkpatch import totals
from harness.errors import HarnessError
from harness.revision import series_from_range
from harness.series import load_series

DATA = Path(__file__).parent / "data"


def test_checkpatch_totals():
    assert totals((DATA / "checkpatch-bad.txt").read_text()) == (2, 0, 0)
    assert totals((DATA / "checkpatch-clean.txt").read_text()) == (0, 0, 0)
    assert totals("total: 1 error, 3 warnings, 38 lines checked") == (1, 3, 0)
    assert totals("Can't open foo") is None


@pytest.fixture
def base():
    return load_summary_json(DATA / "summary-default.json")


def test_same_run_is_no_regression(base):
    cmp = compare(base, copy.deepcopy(base))
    assert not cmp.regression and not cmp.fixes and not cmp.added and not cmp.removed
    assert [name for name, _, _ in cmp.stage_times] == [s.name for s in base.stages]


def test_new_failure_fix_added_removed(base):
    cur = copy.deepcopy(base)
    cur.guest[0].status = "failed"
    prev = copy.deepcopy(base)
    prev.guest[1].status = "failed"
    gone = cur.guest.pop(2)
    new = copy.deepcopy(cur.guest[3])
    new.name, new.status = "test_brand_new", "failed"
    cur.guest.append(new)
    cmp = compare(prev, cur)
    key = lambda c: f"{c.suite}::{c.name}"  # noqa: E731
    assert cmp.new_failures == [key(cur.guest[0]), key(new)]
    assert cmp.fixes == [key(cur.guest[1])]
    assert cmp.added == [key(new)] and cmp.removed == [key(gone)]
    assert cmp.regression
    text = render_comparison(cmp, Path("prev.json"))
    assert "new failures     2" in text and "regression: yes" in text


def test_failing_stage_is_a_regression(base):
    cur = copy.deepcopy(base)
    cur.stages.append(copy.deepcopy(cur.stages[0]))
    cur.stages[-1].name, cur.stages[-1].status = "builds after 02/03", "failed"
    cmp = compare(base, cur)
    assert cmp.new_failures == ["stage::builds after 02/03"]


def test_bad_baseline_files(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        load_summary_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stages": [{"nope": 1}]}))
    with pytest.raises(HarnessError, match="not an isolharness summary.json"):
        load_summary_json(bad)


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "linux", ["patch 0", "patch 1", "patch 2"], tag="v1")


def test_range_becomes_a_series(repo, tmp_path):
    directory, base = series_from_range(repo, "v1..main", tmp_path / "cache")
    assert base == git(repo, "rev-parse", "v1").strip()
    series = load_series(directory)
    assert [p.name for p in series.patches] == ["0001-patch-0.patch", "0002-patch-1.patch", "0003-patch-2.patch"]
    assert git(repo, "status", "--porcelain").strip() == ""


@pytest.mark.parametrize("spec, match", [
    ("main..main", "empty series"),
    ("v1..nope", "unknown revision 'nope'"),
    ("v1...main", "is not a range"),
    ("..main", "is not a range"),
])
def test_bad_ranges(repo, tmp_path, spec, match):
    with pytest.raises(HarnessError, match=match):
        series_from_range(repo, spec, tmp_path / "cache")
