"""A sample of the mutants of tests/e2e/mutants/ (the whole set runs from
`make mutants`): each built and booted on top of the default series, and
killed by the guest tests its changelog names. One breaks each series:
a setter that applies part of a refused request, and a refusal placed
after the IPI it is meant to prevent."""

from __future__ import annotations

import sys

import mutation
from conftest import PROJECT

SAMPLE = ["01-set-applies-known-bits-before-refusing", "15-clockevents-refuses-after-the-ipi"]


def test_every_mutant_names_the_rule_it_breaks_and_its_tests():
    mutants = mutation.load_mutants()
    assert len(mutants) >= 15
    guest = {p.name for p in (PROJECT / "tests" / "guest").glob("test_*.py")}
    kunit = "".join(p.read_text() for p in (PROJECT / "patches").glob("*/*.patch"))
    for m in mutants:
        for name in m.killed_by:
            path, _, test = name.partition("::")
            if mutation.kunit_suite(name):
                # A KUnit case of a series: in its suite's case list.
                assert f".name = \"{mutation.kunit_suite(name)}\"" in kunit, (m.name, name)
                assert f"KUNIT_CASE({test})" in kunit, (m.name, name)
                continue
            assert path.startswith("tests/guest/") and path.split("/")[-1] in guest, (m.name, name)
            text = (PROJECT / path).read_text()
            assert f"def {test.split('[')[0]}(" in text, (m.name, name)


def test_a_sample_of_mutants_is_killed_by_the_tests_they_name(default_run, tmp_path, capsys):
    """The default run (the unmutated series) passed; each mutant on top of
    it fails exactly where it says it should."""
    assert default_run.rc == 0, default_run.output[-3000:]
    code = mutation.main(["--work", str(tmp_path), "--no-baseline", *SAMPLE])
    out = capsys.readouterr().out
    sys.stdout.write(out)
    assert code == 0, out
    assert f"mutation score: {len(SAMPLE)}/{len(SAMPLE)} killed" in out
