"""GATEWAY_PIPELINE_WORKERS (auto, one per core, none on one core; a number; or an error) and
GATEWAY_RECORD_CONSUMERS, GATEWAY_FILING_PROCESS."""

import pytest

from gateway import config
from gateway.config import Settings
from gateway.errors import ConfigError


def test_auto_is_one_worker_per_available_core(monkeypatch):
    monkeypatch.setattr(config, "available_cores", lambda: 4)
    assert Settings.from_env({}).pipeline_workers == 4
    monkeypatch.setattr(config, "available_cores", lambda: 1)
    assert Settings.from_env({}).pipeline_workers == 0  # a pool on one core is pure overhead


def test_an_explicit_number_wins_and_zero_means_threads():
    assert Settings.from_env({"GATEWAY_PIPELINE_WORKERS": "3"}).pipeline_workers == 3
    assert Settings.from_env({"GATEWAY_PIPELINE_WORKERS": "0"}).pipeline_workers == 0


@pytest.mark.parametrize("value", ["-1", "two", ""])
def test_a_bad_value_names_the_variable(value):
    with pytest.raises(ConfigError, match="GATEWAY_PIPELINE_WORKERS"):
        Settings.from_env({"GATEWAY_PIPELINE_WORKERS": value})


def test_record_consumers_default_to_two_and_zero_makes_an_intake_only_gateway():
    assert Settings.from_env({}).record_consumers == 2
    assert Settings.from_env({"GATEWAY_RECORD_CONSUMERS": "0"}).record_consumers == 0
    with pytest.raises(ConfigError, match="GATEWAY_RECORD_CONSUMERS"):
        Settings.from_env({"GATEWAY_RECORD_CONSUMERS": "-1"})


def test_filing_process_is_a_child_on_several_cores_and_can_be_forced_either_way(monkeypatch):
    monkeypatch.setattr(config, "available_cores", lambda: 2)
    assert Settings.from_env({}).filing_process is True
    monkeypatch.setattr(config, "available_cores", lambda: 1)
    assert Settings.from_env({}).filing_process is False
    assert Settings.from_env({"GATEWAY_FILING_PROCESS": "1"}).filing_process is True
    assert Settings.from_env({"GATEWAY_FILING_PROCESS": "0"}).filing_process is False
    with pytest.raises(ConfigError, match="GATEWAY_FILING_PROCESS"):
        Settings.from_env({"GATEWAY_FILING_PROCESS": "yes"})
