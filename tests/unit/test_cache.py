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
