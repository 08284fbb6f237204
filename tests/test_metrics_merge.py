"""One /metrics for a gateway's processes: families of the same name merged, samples with the
same labels added up (the filing child counts into the parent's series)."""

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics, merged


def _samples(text: str) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_counters_and_histograms_of_two_processes_add_up_and_each_family_appears_once():
    parent, child = Metrics(), Metrics()
    parent.tracking_dropped.inc(2)
    child.tracking_dropped.inc(3)
    child.consumed.labels("patient-record", "handled").inc(5)
    parent.consumed.labels("patient-record", "parked").inc()
    parent.consumer_lag.labels("patient-record").observe(0.02)
    child.consumer_lag.labels("patient-record").observe(0.02)
    child.consumer_lag.labels("patient-record").observe(2.0)
    parent.up.set(1)
    parent.gather(lambda: list(child.registry.collect()))

    text = parent.exposition().decode()
    families = [f.name for f in text_string_to_metric_families(text)]
    assert len(families) == len(set(families))
    samples = _samples(text)
    assert samples[("passerelle_tracking_events_dropped_total", ())] == 5
    handled = (
        "passerelle_consumer_messages_total",
        (("consumer", "patient-record"), ("outcome", "handled")),
    )
    parked = (
        "passerelle_consumer_messages_total",
        (("consumer", "patient-record"), ("outcome", "parked")),
    )
    assert samples[handled] == 5 and samples[parked] == 1
    lag = (("consumer", "patient-record"),)
    assert samples[("passerelle_consumer_lag_seconds_count", lag)] == 3
    assert samples[("passerelle_consumer_lag_seconds_bucket", (*lag, ("le", "0.05")))] == 2
    assert samples[("passerelle_consumer_lag_seconds_bucket", (*lag, ("le", "+Inf")))] == 3
    assert samples[("passerelle_broker_connected", ())] == 1  # the child's own stays 0


def test_created_timestamps_keep_the_earliest_and_a_silent_source_adds_nothing():
    parent, child = Metrics(), Metrics()
    parent.tracking_dropped.inc()
    families = {f.name: f for f in merged([*parent.registry.collect(), *child.registry.collect()])}
    created = [
        s
        for s in families["passerelle_tracking_events_dropped"].samples
        if s.name.endswith("_created")
    ]
    assert len(created) == 1
    earliest = min(
        s.value
        for m in (parent, child)
        for f in m.registry.collect()
        for s in f.samples
        if s.name == "passerelle_tracking_events_dropped_created"
    )
    assert created[0].value == earliest

    parent.gather(lambda: [])
    assert _samples(parent.exposition().decode()) == _samples(
        generate_latest(parent.registry).decode()
    )
