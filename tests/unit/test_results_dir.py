"""Results directories: a run moves or deletes only what the harness made."""

import pytest

from harness.errors import HarnessError
from harness.results import MARKER, rotate


def test_new_directory_is_made_and_marked(tmp_path):
    res = rotate(tmp_path / "a" / "latest")
    assert (res / MARKER).is_file() and not (tmp_path / "a" / "previous").exists()


def test_second_run_moves_the_first_to_previous_and_replaces_an_older_previous(tmp_path):
    res = rotate(tmp_path / "latest")
    (res / "junit.xml").write_text("first")
    rotate(res)
    assert (tmp_path / "previous" / "junit.xml").read_text() == "first" and list(res.iterdir()) == [res / MARKER]
    (res / "junit.xml").write_text("second")
    rotate(res)
    assert (tmp_path / "previous" / "junit.xml").read_text() == "second"


def test_a_previous_the_harness_did_not_make_is_never_deleted(tmp_path):
    # The reported loss: ~/x/previous went with `--results ~/x/mine`.
    mine = rotate(tmp_path / "mine")
    (tmp_path / "previous").mkdir()
    (tmp_path / "previous" / "thesis.tex").write_text("years of work")
    with pytest.raises(HarnessError, match="not made by isolharness"):
        rotate(mine)
    assert (tmp_path / "previous" / "thesis.tex").read_text() == "years of work"
    assert mine.is_dir()


def test_a_user_directory_with_files_is_refused_an_empty_one_taken(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    with pytest.raises(HarnessError, match="did not write"):
        rotate(user)
    assert (user / "notes.txt").read_text() == "keep" and not (user / MARKER).exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (rotate(empty) / MARKER).is_file()


def test_a_file_or_a_directory_named_previous_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HarnessError, match="not a directory"):
        rotate(tmp_path / "f")
    with pytest.raises(HarnessError, match="named 'previous'"):
        rotate(rotate(tmp_path / "previous"))


def test_a_symlink_named_previous_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / MARKER).write_text("")
    (target / "data").write_text("keep")
    mine = rotate(tmp_path / "mine")
    (tmp_path / "previous").symlink_to(target)
    with pytest.raises(HarnessError):
        rotate(mine)
    assert (target / "data").read_text() == "keep"
