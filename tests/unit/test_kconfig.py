from pathlib import Path

import pytest

from harness.errors import KconfigError
from harness.kconfig import (Dropped, find_dropped, format_dropped, load_fragment, parse_config_text,
                             requested_options)

KCONFIGS = Path(__file__).resolve().parents[2] / "kconfigs"


def test_parse_set_unset_and_comments():
    opts = parse_config_text("# comment\nCONFIG_A=y\n\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=64\n")
    assert opts == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"x y"', "CONFIG_D": "64"}


def test_parse_rejects_garbage_with_location():
    with pytest.raises(KconfigError, match=r"frag:2: cannot parse 'CONFIG_A y'"):
        parse_config_text("CONFIG_B=y\nCONFIG_A y\n", "frag")


def test_later_fragment_overrides(tmp_path):
    a = tmp_path / "a.config"
    b = tmp_path / "b.config"
    a.write_text("CONFIG_X=y\nCONFIG_Y=y\n")
    b.write_text("CONFIG_X=n\n")
    assert requested_options([load_fragment(a), load_fragment(b)]) == {"CONFIG_X": "n", "CONFIG_Y": "y"}


def test_missing_fragment(tmp_path):
    with pytest.raises(KconfigError, match="does not exist"):
        load_fragment(tmp_path / "nope.config")


def test_find_dropped_distinguishes_unknown_and_unmet():
    requested = {"CONFIG_A": "y", "CONFIG_B": "y", "CONFIG_C": "n", "CONFIG_D": "m", "CONFIG_E": "5"}
    final = {"CONFIG_A": "y", "CONFIG_D": "y", "CONFIG_E": "5"}
    dropped = find_dropped(requested, final, defined={"A", "D", "E"})
    assert dropped == [Dropped("CONFIG_B", "y", "n", False), Dropped("CONFIG_D", "m", "y", True)]
    text = format_dropped(dropped)
    assert "CONFIG_B: requested y, got n (no such option in this kernel)" in text
    assert "CONFIG_D: requested m, got y (unmet dependencies)" in text


def test_project_fragments_parse():
    for frag in KCONFIGS.glob("*.config"):
        assert load_fragment(frag).options, frag


def test_config_stamp_follows_tree_and_fragment_content(tmp_path):
    from harness.kconfig import config_stamp

    frag = tmp_path / "a.config"
    frag.write_text("CONFIG_X=y\n")
    one = config_stamp("abc", [load_fragment(frag)])
    assert one == config_stamp("abc", [load_fragment(frag)])
    assert one != config_stamp("abd", [load_fragment(frag)])
    frag.write_text("CONFIG_X=n\n")
    assert one != config_stamp("abc", [load_fragment(frag)])


def test_root_mount_needs_block_only_before_nodev_roots():
    from harness.kconfig import root_mount_problem
    old_tree = "static void __init mount_block_root(char *name)\n"
    new_tree = old_tree + "static int __init mount_nodev_root(char *root_device_name)\n"
    assert root_mount_problem({"CONFIG_BLOCK": "y"}, old_tree) is None
    assert root_mount_problem({}, new_tree) is None
    problem = root_mount_problem({"CONFIG_BLOCK": "n"}, old_tree)
    assert problem and "mount_nodev_root" in problem and "CONFIG_BLOCK" in problem


def test_block_fragment_turns_the_block_layer_back_on():
    base = load_fragment(KCONFIGS / "base.config")
    block = load_fragment(KCONFIGS / "block.config")
    assert base.options["CONFIG_BLOCK"] == "n"
    assert requested_options([base, block])["CONFIG_BLOCK"] == "y"


def test_a_user_fragment_can_turn_a_series_option_off():
    """kconfigs/series/<name>.config goes first, the fragments asked for
    after it: the variant fragments turn the series' own options off."""
    from harness.pipeline import RunOptions, fragment_paths
    from harness.series import Series

    series = (Series("task-isolation", KCONFIGS.parent / "patches" / "task-isolation", ()),)
    opts = RunOptions(fragments=["base", "isolation", "no-task-isolation"])
    paths = fragment_paths(opts, series)
    assert paths[0] == KCONFIGS / "series" / "task-isolation.config"
    assert paths[1:] == [KCONFIGS / f"{n}.config" for n in opts.fragments]
    assert requested_options([load_fragment(p) for p in paths])["CONFIG_TASK_ISOLATION"] == "n"


@pytest.mark.parametrize("fragment, option", [("no-task-isolation", "CONFIG_TASK_ISOLATION"),
                                              ("no-cpu-isolation", "CONFIG_CPU_ISOLATION")])
def test_variant_fragments_leave_nothing_that_selects_the_option_back(fragment, option):
    """NO_HZ_FULL selects CPU_ISOLATION: a variant that turned only the
    latter off would get it back from olddefconfig (and fail the config
    stage's dropped-option check)."""
    frags = [load_fragment(KCONFIGS / f"{n}.config") for n in ("base", "isolation", fragment)]
    opts = requested_options(frags)
    assert opts[option] == "n"
    if option == "CONFIG_CPU_ISOLATION":
        # and isolation.config's RCU_NOCB_CPU=y, which needs NO_HZ_FULL here
        assert opts["CONFIG_NO_HZ_FULL"] == "n" and opts["CONFIG_RCU_NOCB_CPU"] == "n"


@pytest.mark.parametrize("line, out", [("CONFIG_TASK_ISOLATION=y", False),
                                       ("# CONFIG_TASK_ISOLATION is not set", True),
                                       ("", False)], ids=["built", "not set", "not in the tree"])
def test_the_guest_sees_a_feature_configured_out_only_when_the_config_says_not_set(tmp_path, monkeypatch,
                                                                                    line, out):
    """tests/guest/kernel_config.py: a kernel whose tree lacks the option
    (the unpatched kernel of the negative control) has not configured the
    feature out: its tests must fail, not skip."""
    import sys
    guest = str(KCONFIGS.parent / "tests" / "guest")
    sys.path.insert(0, guest)
    try:
        import kernel_config
    finally:
        sys.path.remove(guest)
    config = tmp_path / ".config"
    config.write_text(f"CONFIG_X86_64=y\n{line}\n")
    monkeypatch.setenv("ISOLHARNESS_KCONFIG", str(config))
    kernel_config.options.cache_clear()
    try:
        assert kernel_config.configured_out("CONFIG_TASK_ISOLATION") is out
    finally:
        kernel_config.options.cache_clear()
