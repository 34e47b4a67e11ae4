"""mbox -> Series: real mboxes written by git format-patch from a scratch
repository, applied back with git am."""

import pytest
from gitrepo import git, make_repo

from harness.errors import HarnessError
from harness.mbox import patches_in_order, read_messages, series_from_mbox


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", ["smp: add a thing", "perf: use the thing", "docs: describe it"])


def mbox(repo, path, *args):
    path.write_text(git(repo, "format-patch", "--stdout", *args))
    return path


def test_numbered_series_with_cover_letter(repo, tmp_path):
    box = mbox(repo, tmp_path / "v2.mbox", "--cover-letter", "-v2", "-3")
    messages = read_messages(box)
    assert len(messages) == 4 and not messages[0].has_diff and messages[0].number == 0
    series = series_from_mbox(box, tmp_path / "cache")
    assert [p.name for p in series.patches] == ["0001-smp-add-a-thing.patch", "0002-perf-use-the-thing.patch",
                                                "0003-docs-describe-it.patch"]
    assert (series.directory / "series").read_text().split() == [p.name for p in series.patches]
    # The files are what git am takes: applied to the base they rebuild the top.
    git(repo, "checkout", "-q", "-b", "replay", "HEAD~3")
    git(repo, "am", "-q", *[str(p.path) for p in series.patches])
    assert git(repo, "diff", "main", "replay") == ""
    assert git(repo, "log", "--format=%s", "-3").split("\n")[:3] == [
        "docs: describe it", "perf: use the thing", "smp: add a thing"]


def test_messages_out_of_order_are_sorted_by_number(repo, tmp_path):
    box = mbox(repo, tmp_path / "s.mbox", "-3")
    messages = read_messages(box)
    ordered = patches_in_order(list(reversed(messages)), "s.mbox")
    assert [m.number for m in ordered] == [1, 2, 3]


def test_single_unnumbered_patch(repo, tmp_path):
    series = series_from_mbox(mbox(repo, tmp_path / "one.mbox", "-1"), tmp_path / "cache")
    assert [p.name for p in series.patches] == ["0001-docs-describe-it.patch"]


def test_missing_patch_is_named(repo, tmp_path):
    messages = read_messages(mbox(repo, tmp_path / "s.mbox", "-3"))
    with pytest.raises(HarnessError, match=r"patch 2/3 missing from the mbox"):
        patches_in_order([messages[0], messages[2]], "s.mbox")


def test_duplicate_number(repo, tmp_path):
    messages = read_messages(mbox(repo, tmp_path / "s.mbox", "-3"))
    with pytest.raises(HarnessError, match=r"two patches numbered 1/3"):
        patches_in_order([messages[0], messages[0], messages[1], messages[2]], "s.mbox")


def test_cover_letter_only_is_an_empty_series(repo, tmp_path):
    messages = read_messages(mbox(repo, tmp_path / "s.mbox", "--cover-letter", "-3"))
    with pytest.raises(HarnessError, match=r"empty series: the mbox holds only a cover letter"):
        patches_in_order(messages[:1], "s.mbox")


@pytest.mark.parametrize("content, match", [
    ("", "empty file"),
    ("Subject: hello\n\nnot a mailbox\n", "not an mbox"),
])
def test_malformed_mbox(tmp_path, content, match):
    box = tmp_path / "bad.mbox"
    box.write_text(content)
    with pytest.raises(HarnessError, match=match):
        series_from_mbox(box, tmp_path / "cache")


def test_missing_file(tmp_path):
    with pytest.raises(HarnessError, match="no such mbox file"):
        series_from_mbox(tmp_path / "nope.mbox", tmp_path / "cache")


def test_series_argument_may_be_an_mbox(repo, tmp_path):
    from harness.series import resolve_series

    box = mbox(repo, tmp_path / "my-fix v3.mbox", "--cover-letter", "-2")
    (tmp_path / "patches").mkdir()
    [series] = resolve_series(tmp_path / "patches", [str(box)], tmp_path / "cache")
    assert series.name == "my-fix-v3" and len(series.patches) == 2
