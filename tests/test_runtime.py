"""coursekit.runtime: profiles, device choice, seeding, the environment report."""

from __future__ import annotations

import pytest
import torch

import coursekit as ck
from coursekit import runtime


def test_by_profile_picks_the_active_profile(monkeypatch):
    for profile, expected in [("smoke", 1), ("laptop", 2), ("gpu", 3)]:
        monkeypatch.setenv(runtime.PROFILE_ENV, profile)
        assert ck.by_profile(smoke=1, laptop=2, gpu=3) == expected
    monkeypatch.setenv(runtime.PROFILE_ENV, "gpu")
    assert ck.by_profile(smoke=1, laptop=2) == 2  # gpu falls back to laptop


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(runtime.PROFILE_ENV, "fast")
    with pytest.raises(ValueError, match="smoke, laptop, gpu"):
        ck.get_profile()


def test_default_profile_follows_the_hardware(monkeypatch):
    monkeypatch.delenv(runtime.PROFILE_ENV, raising=False)
    assert ck.get_profile() == ("gpu" if torch.cuda.is_available() else "laptop")


def test_device_override_and_unavailable_device(monkeypatch):
    monkeypatch.setenv(runtime.DEVICE_ENV, "cpu")
    assert ck.get_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv(runtime.DEVICE_ENV, "cuda")
        with pytest.raises(RuntimeError, match="available: .*cpu"):
            ck.get_device()


def test_seed_everything_makes_runs_repeatable():
    ck.seed_everything(7)
    a = torch.randn(5)
    ck.seed_everything(7)
    assert torch.equal(a, torch.randn(5))
    assert torch.equal(ck.seed_everything(7).initial_seed() * torch.ones(1), 7 * torch.ones(1))


def test_environment_report_has_no_checkout_paths():
    report = ck.environment_report()
    text = str(report)
    assert "PyTorch" in text and report.profile in text
    assert str(runtime.Path(__file__).resolve().parents[1]) not in text
