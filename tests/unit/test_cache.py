import subprocess
import sys
import time

from harness.cache import cache_dir, locked


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("ISOLHARNESS_CACHE", str(tmp_path / "env"))
    assert cache_dir(tmp_path / "flag") == (tmp_path / "flag").resolve()
    assert cache_dir() == (tmp_path / "env").resolve()


def test_lock_is_reentrant_in_one_process(tmp_path):
    with locked(tmp_path, "x"):
        with locked(tmp_path, "x"):
            pass
        with locked(tmp_path, "x"):
            pass


def test_lock_excludes_another_process(tmp_path):
    code = ("import sys,time; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
            "from harness.cache import locked\n"
            "with locked(Path(sys.argv[1]), 'x'):\n    print('got', flush=True); time.sleep(1.5)")
    import harness
    from pathlib import Path
    root = str(Path(harness.__file__).parent.parent)
    with locked(tmp_path, "x"):
        proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), root],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert proc.poll() is None  # still waiting for us
    out, err = proc.communicate(timeout=10)
    assert "got" in out and "waiting for x lock held by pid" in err


def test_only_what_an_earlier_version_made_is_retired(tmp_path):
    from harness.cache import retire_old_layout

    made = [tmp_path / "trees" / "tar-c93391b6a488-none", tmp_path / "build" / "ksrc-0123456789ab-task-isolation",
            tmp_path / "src" / "ksrc-0123456789ab"]
    kept = [tmp_path / "build" / "mine", tmp_path / "src" / ("0" * 64), tmp_path / "src" / "git-0123456789ab"]
    for d in made + kept:
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "f").write_text("x")
    (tmp_path / "trees" / "tar-c93391b6a488-link").symlink_to(kept[0])
    retire_old_layout(tmp_path)
    assert not any(d.exists() for d in made)
    assert all((d / "sub" / "f").read_text() == "x" for d in kept)
    assert (tmp_path / "trees").is_dir()  # it still holds the symlink, which is not followed
    retire_old_layout(tmp_path)  # nothing left to do


def test_ksrc_trees_of_one_history_get_one_key_and_the_roots_are_remembered(tmp_path):
    from gitrepo import git, make_repo

    from harness.source import history_key

    one = make_repo(tmp_path / "one", ["a", "b"])
    two = tmp_path / "two"
    subprocess.run(["git", "clone", "-q", str(one), str(two)], check=True)
    git(two, "commit", "-q", "--allow-empty", "-m", "only in two")
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    git(other, "commit", "-q", "--allow-empty", "-m", "another project")
    cache = tmp_path / "cache"
    head = lambda r: git(r, "rev-parse", "HEAD").strip()  # noqa: E731
    k1, k2, k3 = (history_key(cache, r, head(r)) for r in (one, two, other))
    assert k1 == k2 != k3 and k1.startswith("git-") and len(k1) == 16
    memo = (cache / "src" / "ksrc-roots.json").read_text()
    assert str(one) in memo and str(other) in memo
    # A path whose repository was replaced by another history is looked at again.
    subprocess.run(["rm", "-rf", str(one)], check=True)
    subprocess.run(["git", "clone", "-q", str(other), str(one)], check=True)
    assert history_key(cache, one, head(one)) == k3
