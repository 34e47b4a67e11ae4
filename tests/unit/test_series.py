import pytest

from harness.errors import HarnessError
from harness.series import load_series, parse_series_text, resolve_series, series_set_digest, series_set_key


def make_series(root, name, patches, extra=""):
    d = root / name
    d.mkdir()
    for p in patches:
        (d / p).write_text(f"patch {p}\n")
    (d / "series").write_text("# comment\n\n" + "\n".join(patches) + "\n" + extra)
    return d


def test_parse_series_skips_comments_and_accepts_p1():
    assert parse_series_text("a.patch\n# x\n\nb.patch -p1  # trailing\n", "s") == ["a.patch", "b.patch"]


def test_parse_series_refuses_other_options():
    with pytest.raises(HarnessError, match="unsupported options '-p0'"):
        parse_series_text("a.patch -p0\n", "s")


def test_load_series_in_order(tmp_path):
    d = make_series(tmp_path, "feat", ["0002-b.patch", "0001-a.patch"])
    s = load_series(d)
    assert [p.name for p in s.patches] == ["0002-b.patch", "0001-a.patch"]


def test_missing_patch_is_named(tmp_path):
    d = make_series(tmp_path, "feat", ["0001-a.patch"], extra="0002-gone.patch\n")
    with pytest.raises(HarnessError, match="names '0002-gone.patch', which does not exist"):
        load_series(d)


def test_empty_series_and_missing_file(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "series").write_text("# nothing\n")
    with pytest.raises(HarnessError, match="lists no patches"):
        load_series(tmp_path / "empty")
    (tmp_path / "noseries").mkdir()
    with pytest.raises(HarnessError, match="has no 'series' file"):
        load_series(tmp_path / "noseries")


def test_resolve_defaults_none_and_unknown(tmp_path):
    make_series(tmp_path, "one", ["a.patch"])
    make_series(tmp_path, "two", ["b.patch"])
    (tmp_path / "DEFAULT").write_text("two\none\n")
    assert [s.name for s in resolve_series(tmp_path, None)] == ["two", "one"]
    assert resolve_series(tmp_path, ["none"]) == []
    with pytest.raises(HarnessError, match="unknown series 'three'") as exc:
        resolve_series(tmp_path, ["three"])
    assert "known series: one, two" in exc.value.render()


def test_digest_follows_content(tmp_path):
    d = make_series(tmp_path, "one", ["a.patch"])
    before = series_set_digest([load_series(d)])
    (d / "a.patch").write_text("changed\n")
    assert series_set_digest([load_series(d)]) != before
    assert series_set_key([load_series(d)]) == "one"
    assert series_set_key([]) == "none"
