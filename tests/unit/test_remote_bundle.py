"""What `isolharness test --target` uploads: the guest suite as the
repository has it, so that a test reading a file beside it (a C source of
the program catalogue) finds it on the target too."""

from __future__ import annotations

import io
import subprocess
import tarfile

from harness.remote import PROJECT, _bundle


def test_the_bundle_holds_every_tracked_file_of_the_guest_suite_and_no_bytecode():
    tracked = subprocess.run(["git", "-C", str(PROJECT), "ls-files", "tests/guest"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert "tests/guest/deferred_fput.c" in tracked
    with tarfile.open(fileobj=io.BytesIO(_bundle(None)), mode="r:gz") as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert set(tracked) <= names, sorted(set(tracked) - names)
    assert not [n for n in names if "__pycache__" in n]
    assert any(n.startswith("pylib/_pytest/") for n in names)
