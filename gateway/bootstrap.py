"""The composition root: the only place that builds and wires the running parts."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from gateway.adapters.cda.parser import CdaLimits
from gateway.adapters.hl7v2 import crbio
from gateway.api import identity
from gateway.broker import topology
from gateway.broker.consumer import Consumer, RetryPolicy
from gateway.broker.loop_publisher import LoopPublisher
from gateway.broker.names import Names
from gateway.broker.probe import TopologyProbe
from gateway.broker.publisher import Publisher
from gateway.config import Settings
from gateway.filing import FilingProcess
from gateway.logs import log
from gateway.metrics import Metrics, QueueDepthCollector, UnroutableCollector
from gateway.pipeline import Checks, Tools
from gateway.records import notify
from gateway.records.store import RecordStore
from gateway.records.worker import RecordWorker
from gateway.routing import loader
from gateway.routing.reload import RoutingReloader
from gateway.routing.table import RoutingTable
from gateway.security import senders as sender_config
from gateway.security.limits import ConnectionLimiter
from gateway.security.senders import SenderRegistry
from gateway.service import IngestService
from gateway.signing import setup as signing
from gateway.signing.inbound import SenderPolicy
from gateway.signing.xades import XadesSigner
from gateway.tracking.consumer import tracked
from gateway.tracking.replay import ParkingReplayer, Replayer
from gateway.tracking.store import TrackingStore
from gateway.tracking.tracker import BufferedTracker, NullTracker, Tracker
from gateway.validators import cda_schema
from gateway.validators.cda import BUILT_IN, CdaValidator
from gateway.workers import PipelineWorkers

PATIENT_RECORD_CONSUMER = "patient-record"


def load_checks(settings: Settings) -> Checks:
    """Built-in CDA rules always; the conformance pack's layers too when one is configured."""
    validator = CdaValidator()
    if settings.conformance_pack is not None:
        from gateway.conformance import pack
        from gateway.conformance.validator import PackValidator

        layer = PackValidator(
            pack.load(settings.conformance_pack), cache_dir=settings.data_dir / "conformance"
        )
        # Compiled here, once per process (each pipeline worker too), not on the first document.
        problems = layer.warm_up()
        log("pack.compiled", component="conformance-pack", count=len(problems))
        validator = CdaValidator(layers=(*BUILT_IN, layer))
    cda_schema.schema()  # compiled now, before any document, in every process that validates
    director = crbio.Person(*settings.lab_director) if settings.lab_director else None
    return Checks(
        cda_limits=CdaLimits(max_bytes=settings.max_document_bytes),
        cda_validator=validator,
        laboratory=crbio.Laboratory(settings.lab_structure_id, director),
        accept_test_ins=settings.accept_test_ins,
    )


def load_tools(settings: Settings) -> Tools:
    """Routing table, signing and seal keys, validators: loaded once, shared read-only."""
    return Tools(
        signer=XadesSigner(signing.load_key(settings)),
        routing=loader.load(settings.routing_file),
        checks=load_checks(settings),
        inbound=signing.load_inbound(settings),
        seal_key=signing.load_envelope_key(settings),
    )


def _for_intake(settings: Settings) -> Settings:
    """What the intake process loads its tools with. With pipeline workers, documents are
    read, checked and signed in them, each with tools of its own: this process only routes,
    so it does not compile the conformance pack (seconds of CPU at start, ~0.5 GB)."""
    if settings.pipeline_workers and settings.conformance_pack is not None:
        return replace(settings, conformance_pack=None)
    return settings


def start_workers(settings: Settings) -> PipelineWorkers | None:
    """Pipeline worker processes (GATEWAY_PIPELINE_WORKERS), started before intake opens."""
    if not settings.pipeline_workers:
        return None
    workers = PipelineWorkers(settings, settings.pipeline_workers)
    try:
        workers.start()
    except BaseException:
        workers.shutdown()
        raise
    return workers


@dataclass
class Services:
    settings: Settings
    names: Names
    tools: Tools
    publisher: Publisher | LoopPublisher
    store: RecordStore
    ingest: IngestService
    consumers: list[Consumer] = field(default_factory=list)
    executor: ThreadPoolExecutor | None = None
    reloader: RoutingReloader | None = None
    token_secret: bytes = b""  # records API tokens (gateway/api/identity.py)
    notifier: notify.Notifier | None = None  # patient notifications, when routing.yaml has them
    metrics: Metrics = field(default_factory=Metrics)
    tracker: Tracker = field(default_factory=NullTracker)
    tracking: TrackingStore | None = None
    probe: TopologyProbe | None = None
    replayer: Replayer | None = None
    workers: PipelineWorkers | None = None
    filing: FilingProcess | None = None  # the record consumers' process, when they have one
    senders: SenderRegistry | None = None  # None: authentication off
    connections: ConnectionLimiter = field(default_factory=ConnectionLimiter)


def start(settings: Settings, loop: asyncio.AbstractEventLoop | None = None) -> Services:
    """Load, connect and start everything; faults (ConfigError, KeystoreError,
    BrokerUnavailable, StoreUnavailable) propagate with a message naming the cause.

    ``loop``: the running event loop that will serve the transports, called from another
    thread; the publisher then lives in it (LoopPublisher), else in a thread of its own."""
    metrics = Metrics()
    tools = load_tools(_for_intake(settings))
    tools = replace(tools, signer=metrics.timed_signer(tools.signer))
    verifier = signing.load_verifier(settings)
    token_secret = identity.load_secret(settings.data_dir, settings.token_secret)
    senders = (
        sender_config.load(
            settings.senders_file, must_sign=SenderPolicy(settings.signed_senders).requires
        )
        if settings.senders_file
        else None
    )
    names = Names(settings.amqp_prefix)
    store = RecordStore.open(settings.database_url)
    declarations = topology.plan(tools.routing, names)
    options = {
        "topology": declarations,
        "parking": _parking(tools.routing, names),
        "on_state": lambda up: metrics.up.set(int(up)),
    }
    publisher = (
        LoopPublisher(loop, settings.amqp_url, **options)
        if loop is not None
        else Publisher(settings.amqp_url, **options)
    )
    try:
        publisher.start()
    except Exception:
        store.close()
        raise
    try:
        workers = start_workers(settings)
    except BaseException:
        publisher.stop()
        store.close()
        raise
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ingest")
    tracking = TrackingStore(store.engine)
    tracker = BufferedTracker(tracking, on_drop=metrics.tracking_dropped.inc)
    probe = TopologyProbe(settings.amqp_url, declarations)
    metrics.watch(QueueDepthCollector(probe.queue_depths))
    metrics.watch(UnroutableCollector(lambda: publisher.unroutable_parked))
    services = Services(
        settings=settings,
        names=names,
        tools=tools,
        publisher=publisher,
        store=store,
        ingest=IngestService(
            tools,
            publisher,
            names,
            executor,
            settings.publish_timeout_s,
            tracker,
            metrics,
            workers=workers,
            senders=senders,
            pipeline_timeout_s=settings.request_timeout_s,
        ),
        executor=executor,
        token_secret=token_secret,
        workers=workers,
        senders=senders,
        metrics=metrics,
        tracker=tracker,
        tracking=tracking,
        probe=probe,
        replayer=ParkingReplayer(settings.amqp_url, names, tools.routing)
        if tools.routing.parking in tools.routing.destinations
        else None,
    )
    if notify.DESTINATION in tools.routing.destinations:
        services.notifier = notify.BrokerNotifier(publisher, names, settings.publish_timeout_s)
    if settings.record_consumers and settings.filing_process:
        services.filing = FilingProcess(settings, routing=lambda: services.tools.routing)
        try:
            services.filing.start()
        except BaseException:
            stop(services)
            raise
        metrics.gather(services.filing.metric_families)
    else:
        worker = RecordWorker(
            store,
            verifier,
            notifier=services.notifier,
            seal_key=tools.seal_key,
            files_for=record_destinations(tools.routing),
        )
        services.consumers = start_record_consumers(
            settings, names, tools.routing, worker, tracker, metrics
        )
    services.reloader = RoutingReloader(
        settings.routing_file,
        lambda table: apply_routing(services, table),
        settings.routing_reload_s,
    )
    services.reloader.start()
    return services


def record_destinations(routing: RoutingTable) -> tuple[str, ...]:
    """The destinations the record consumers take (``consumer: patient-record``): what the
    record worker files for, and so what a sealed message must have been routed to."""
    return tuple(
        d.name for d in routing.destinations.values() if d.consumer == PATIENT_RECORD_CONSUMER
    )


def start_record_consumers(
    settings: Settings,
    names: Names,
    routing: RoutingTable,
    worker: RecordWorker,
    tracker: Tracker,
    metrics: Metrics,
) -> list[Consumer]:
    """``settings.record_consumers`` competing consumers on each patient-record queue.

    Several per queue: while one waits on PostgreSQL round trips, another files; filing is
    safe under concurrency (the set row is locked, the document id checked again under the
    lock), as it must be with several gateway instances anyway."""
    consumers = []
    for name in record_destinations(routing):
        dest = routing.destinations[name]
        for n in range(1, settings.record_consumers + 1):
            consumer = Consumer(
                settings.amqp_url,
                names.queue(dest.queue),
                tracked(worker.batched(), dest.name, tracker, metrics),
                settings.consumer_prefetch,
                name=f"consumer-{dest.name}-{n}",
                policy=RetryPolicy.for_destination(dest, names),
            )
            consumer.start()
            consumers.append(consumer)
    return consumers


@dataclass
class FilingParts:
    """What files documents when it runs apart from intake (gateway/filing.py's child)."""

    metrics: Metrics
    store: RecordStore
    tracker: Tracker
    consumers: list[Consumer]
    publisher: Publisher | None  # for patient notifications, when routing.yaml has them


def start_filing(settings: Settings, routing: RoutingTable | None = None) -> FilingParts:
    """The record consumers with their own connections: store, tracking, broker. ``routing``:
    the gateway's current table (else routing.yaml is read)."""
    metrics = Metrics()
    routing = routing if routing is not None else loader.load(settings.routing_file)
    names = Names(settings.amqp_prefix)
    verifier = signing.load_verifier(settings)
    seal_key = signing.load_envelope_key(settings)
    store = RecordStore.open(settings.database_url)
    publisher = notifier = None
    try:
        if notify.DESTINATION in routing.destinations:
            publisher = Publisher(
                settings.amqp_url, topology.plan(routing, names), parking=_parking(routing, names)
            )
            publisher.start()
            notifier = notify.BrokerNotifier(publisher, names, settings.publish_timeout_s)
    except BaseException:
        store.close()
        raise
    tracker = BufferedTracker(TrackingStore(store.engine), on_drop=metrics.tracking_dropped.inc)
    filing = FilingParts(metrics, store, tracker, [], publisher)
    try:
        worker = RecordWorker(
            store,
            verifier,
            notifier=notifier,
            seal_key=seal_key,
            files_for=record_destinations(routing),
        )
        filing.consumers = start_record_consumers(
            settings, names, routing, worker, tracker, metrics
        )
    except BaseException:
        stop_filing(filing)
        raise
    return filing


def stop_filing(filing: FilingParts) -> None:
    for consumer in filing.consumers:
        consumer.stop()
    if filing.publisher is not None:
        filing.publisher.stop()
    filing.tracker.close()
    filing.store.close()


def _parking(table: RoutingTable, names: Names) -> tuple[str, str] | None:
    return (names.exchange, table.parking) if table.parking else None


def apply_routing(services: Services, table: RoutingTable) -> None:
    """Switch a running gateway to a reloaded routing table: declare first, then swap, so no
    document is routed to a queue that does not exist yet. Consumers are attached at start only."""
    decls = topology.plan(table, services.names)
    topology.declare_at(services.settings.amqp_url, decls)
    services.publisher.set_topology(decls, _parking(table, services.names))
    services.tools = dataclasses.replace(services.tools, routing=table)
    services.ingest.tools = services.tools


def stop(services: Services) -> None:
    if services.reloader is not None:
        services.reloader.stop()
    for consumer in services.consumers:
        consumer.stop()
    if services.filing is not None:
        services.filing.stop()
    services.publisher.stop()
    if services.executor is not None:
        services.executor.shutdown(wait=True, cancel_futures=True)
    services.tracker.close()
    if services.workers is not None:
        services.workers.shutdown()
    services.store.close()
