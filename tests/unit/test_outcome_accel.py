import pytest

from harness.accel import decide, probe_failure
from harness.errors import HarnessError
from harness.outcome import EXIT_ERROR, EXIT_FAILED, EXIT_OK, exit_status


@pytest.mark.parametrize("statuses, expected", [
    (["passed", "passed"], EXIT_OK),
    (["passed", "skipped"], EXIT_OK),
    (["passed", "failed"], EXIT_FAILED),
    (["failed", "error"], EXIT_ERROR),
    (["passed", "missed"], EXIT_ERROR),
    (["skipped"], EXIT_ERROR),
    ([], EXIT_ERROR),
])
def test_exit_status(statuses, expected):
    assert exit_status(statuses) == expected


def never(): raise AssertionError("probe must not run")


def test_tcg_requested_never_probes():
    choice, record = decide("tcg", True, None, "k", never)
    assert choice.accel == "tcg" and record is None


def test_no_device_falls_back_without_probe():
    choice, _ = decide("auto", False, None, "k", never)
    assert choice.accel == "tcg" and "/dev/kvm" in choice.reason


def test_kvm_requested_without_device_is_an_error():
    with pytest.raises(HarnessError, match="/dev/kvm"):
        decide("kvm", False, None, "k", never)


def test_probe_failure_means_tcg_and_is_recorded():
    choice, record = decide("auto", True, None, "host1", lambda: probe_failure(False, None, False, 30.5))
    assert choice.accel == "tcg" and choice.reason == "KVM probe boot did not reach the guest command within 30s"
    assert record == {"key": "host1", "accel": "tcg", "reason": choice.reason}


def test_probe_success_means_kvm():
    choice, _ = decide("auto", True, None, "host1", lambda: probe_failure(True, 0, False, 3.0))
    assert choice.accel == "kvm"
    choice, _ = decide("auto", True, None, "host1", lambda: probe_failure(False, None, True, 7.2))
    assert choice.accel == "tcg"
    assert choice.reason == "KVM probe boot printed nothing for 5s before the guest command (hung after 7s)"
    # QEMU's KVM code can also abort at once (an MSR the host refuses).
    choice, _ = decide("auto", True, None, "host1", lambda: probe_failure(False, 1, False, 0.3))
    assert choice.reason == "KVM probe boot ended (exit 1) after 0s without reaching the guest command"


def test_cached_verdict_used_only_for_same_host_key():
    cached = {"key": "host1", "accel": "tcg", "reason": "probe hung"}
    choice, record = decide("auto", True, cached, "host1", never)
    assert choice.accel == "tcg" and "cached" in choice.reason and record is None
    choice, record = decide("auto", True, cached, "host2", lambda: "")
    assert choice.accel == "kvm" and record is not None


def test_unknown_accel():
    with pytest.raises(HarnessError, match="unknown accelerator"):
        decide("hvf", True, None, "k", never)


def test_error_classes_map_to_their_outcome():
    from harness.errors import BuildError, KconfigError, SeriesApplyError

    assert exit_status([SeriesApplyError("x").status]) == EXIT_FAILED
    assert exit_status([BuildError("x").status]) == EXIT_FAILED
    assert exit_status([KconfigError("x").status]) == EXIT_ERROR
    assert exit_status([HarnessError("x").status]) == EXIT_ERROR
