"""Numeric and named settings are bounded: a value the gateway cannot use is refused at start,
naming the variable, the value and what is allowed — not met later as a dead consumer thread
(prefetch past AMQP's 16 bits), waits that end at once (nan) or a logging traceback."""

import re

import pytest

from gateway.config import Settings
from gateway.errors import ConfigError

TIMEOUTS = (
    "GATEWAY_REQUEST_TIMEOUT",
    "GATEWAY_PUBLISH_TIMEOUT",
    "GATEWAY_MLLP_IDLE_TIMEOUT",
    "GATEWAY_ROUTING_RELOAD_INTERVAL",
)


@pytest.mark.parametrize("name", TIMEOUTS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "86401", "1e300", "soon"])
def test_a_timeout_or_interval_must_be_finite_and_positive(name, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(f"{name}={value!r}: ")


def test_timeouts_within_bounds_are_taken():
    s = Settings.from_env({"GATEWAY_REQUEST_TIMEOUT": "0.5", "GATEWAY_PUBLISH_TIMEOUT": "86400"})
    assert (s.request_timeout_s, s.publish_timeout_s) == (0.5, 86400.0)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("GATEWAY_CONSUMER_PREFETCH", "70000", "from 1 to 65535"),
        ("GATEWAY_CONSUMER_PREFETCH", "0", "from 1 to 65535"),
        ("GATEWAY_RECORD_CONSUMERS", "1000", "from 0 to 256"),
        ("GATEWAY_PIPELINE_WORKERS", "5000", "from 0 (none) to 256"),
        ("GATEWAY_MAX_DOCUMENT_BYTES", "999999999999", "from 1 to 1073741824"),
    ],
)
def test_counts_and_sizes_are_bounded(name, value, allowed):
    with pytest.raises(ConfigError, match=rf"^{name}='{value}': .*{re.escape(allowed)}"):
        Settings.from_env({name: value})


def test_the_largest_prefetch_amqp_can_carry_is_accepted():
    assert Settings.from_env({"GATEWAY_CONSUMER_PREFETCH": "65535"}).consumer_prefetch == 65535


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("GATEWAY_LOG_LEVEL", "verbose", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("GATEWAY_LOG_FORMAT", "xml", "json, text"),
        ("GATEWAY_TEST_INS", "maybe", "accept, refuse"),
    ],
)
def test_log_level_and_format_are_names_logging_knows(name, value, allowed):
    with pytest.raises(ConfigError, match=rf"^{name}='{value}': expected one of {allowed}$"):
        Settings.from_env({name: value})


def test_log_names_are_taken_in_any_case():
    s = Settings.from_env({"GATEWAY_LOG_LEVEL": "debug", "GATEWAY_LOG_FORMAT": "TEXT"})
    assert (s.log_level, s.log_format) == ("DEBUG", "text")


def test_test_ins_are_accepted_unless_refused():
    assert Settings.from_env({}).accept_test_ins
    assert not Settings.from_env({"GATEWAY_TEST_INS": "refuse"}).accept_test_ins
