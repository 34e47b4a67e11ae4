"""The CI definitions in ci/ against each format's schema (check-jsonschema's
bundled GitHub workflow and GitLab CI schemas), and their shell steps
through bash -n."""

import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

CI = Path(__file__).resolve().parents[2] / "ci"
LINTER = Path(sys.executable).parent / "check-jsonschema"
FILES = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}


def lint(path: Path, schema: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINTER), "--builtin-schema", schema, str(path)], capture_output=True, text=True)


@pytest.mark.parametrize("name", sorted(FILES))
def test_ci_definition_matches_its_schema(name):
    res = lint(CI / name, FILES[name])
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("name, broken", [
    ("github-actions.yml", ("runs-on: ubuntu-latest", "runs-on: [ubuntu-latest, {bad: 1}]")),
    ("gitlab-ci.yml", ("timeout: 150m", "timeout: [150m]")),
])
def test_the_linter_catches_a_broken_copy(tmp_path, name, broken):
    text = (CI / name).read_text()
    assert broken[0] in text
    copy = tmp_path / name
    copy.write_text(text.replace(broken[0], broken[1]))
    assert lint(copy, FILES[name]).returncode != 0


def shell_steps(name: str) -> list[str]:
    doc = YAML(typ="safe").load((CI / name).read_text())
    if name == "github-actions.yml":
        return [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]
    return [line for job in doc.values() if isinstance(job, dict) and "script" in job for line in job["script"]]


@pytest.mark.parametrize("name", sorted(FILES))
def test_shell_steps_parse(name):
    steps = shell_steps(name)
    assert steps
    for script in steps:
        res = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert res.returncode == 0, f"{script}\n{res.stderr}"
    assert any("isolharness series" in script for script in steps)


def test_both_definitions_pass_the_fleets_remote_ccache_to_the_harness():
    gh = YAML(typ="safe").load((CI / "github-actions.yml").read_text())
    assert gh["jobs"]["series"]["env"]["ISOLHARNESS_CCACHE_REMOTE"] == "${{ vars.ISOLHARNESS_CCACHE_REMOTE }}"
    gl = YAML(typ="safe").load((CI / "gitlab-ci.yml").read_text())
    # A project or group variable of that name overrides this empty default.
    assert gl["variables"]["ISOLHARNESS_CCACHE_REMOTE"] == ""
    from harness.ccache import REMOTE_ENV

    assert REMOTE_ENV == "ISOLHARNESS_CCACHE_REMOTE"
