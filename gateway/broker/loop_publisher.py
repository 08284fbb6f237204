"""LoopPublisher: the gateway's confirmed publisher, run by its event loop.

The gateway publishes from its event loop. Through a threaded Publisher every batch is
handed to the publisher's thread (a pipe write to wake it) and every confirm handed back (a
wake of the loop), the GIL passing between the two each time. Here pika's AsyncioConnection
lives in the loop itself: the frames of ``publish()`` leave at the end of the loop's turn,
and a confirm resolves an asyncio Future in the same loop (docs/performance.md, "The
publisher in the event loop"). The bookkeeping of confirms, returns and losses is
ConfirmedChannel's, as for Publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from pika.adapters.asyncio_connection import AsyncioConnection

from gateway.broker.connection import parameters
from gateway.broker.publisher import Coalescing, ConfirmedChannel, OutboundMessage
from gateway.errors import BrokerUnavailable

STOP_TIMEOUT_S = 5.0


class _Connection(Coalescing, AsyncioConnection):
    pass


class LoopPublisher(ConfirmedChannel):
    """Owned by ``loop``, which must be running whenever ``start``/``stop`` are called."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._loop = loop
        self._loop_thread: int | None = None  # known once the loop ran _begin
        self._keeper: asyncio.Task | None = None
        self._closed: asyncio.Future | None = None  # done once the current connection ended
        self._ending: asyncio.Task | None = None  # a stop asked from the loop itself

    def start(self, timeout: float = 10.0) -> None:
        """From a thread other than the loop's: connect and declare the topology;
        BrokerUnavailable when the first attempt fails."""
        asyncio.run_coroutine_threadsafe(self._begin(), self._loop).result(timeout)
        self._first_connection(timeout)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Close the connection (confirms still awaited fail as BrokerUnavailable); waits for it
        when called from another thread than the loop's."""
        self._stopping.set()
        if self._on_loop():
            # held: the loop keeps only a weak reference to a task
            self._ending = self._loop.create_task(self._end(timeout))
            return
        with contextlib.suppress(RuntimeError, TimeoutError):  # the loop is closed, or stuck
            asyncio.run_coroutine_threadsafe(self._end(timeout), self._loop).result(timeout + 1)

    def publish(self, messages: Sequence[OutboundMessage]) -> asyncio.Future | Future:
        """Resolves once every message is confirmed (never before). Called on the loop (the
        service): an asyncio Future, the frames sent at the end of this turn. From another
        thread (record consumers in the gateway's process notifying patients): a concurrent
        Future, the work handed to the loop."""
        if self._on_loop():
            future = self._loop.create_future()
            self._take(messages, future)
            return future
        handed: Future = Future()
        handed.set_running_or_notify_cancel()
        try:
            self._loop.call_soon_threadsafe(self._take, messages, handed)
        except RuntimeError:  # the loop is closed: the gateway is stopping
            handed.set_exception(BrokerUnavailable("not connected to RabbitMQ"))
        return handed

    # -- the loop ------------------------------------------------------------------------

    def _on_loop(self) -> bool:
        return self._loop_thread == threading.get_ident()

    def _take(self, messages: Sequence[OutboundMessage], future) -> None:
        refusal = self._refusal() if messages else None
        if not messages:
            future.set_result(None)
        elif refusal is not None:
            future.set_exception(refusal)
        else:
            self._publish_now(messages, future)

    async def _begin(self) -> None:
        self._loop_thread = threading.get_ident()
        self._keeper = asyncio.create_task(self._keep_connected(), name="amqp-publisher")

    async def _keep_connected(self) -> None:
        while not self._stopping.is_set():
            self._closed = self._loop.create_future()
            try:
                # a blocking connection of its own: in a thread, not on the loop
                await asyncio.to_thread(self._declare_topology)
                self._connection = _Connection(
                    parameters(self._url), custom_ioloop=self._loop, **self._callbacks()
                )
            except BrokerUnavailable as exc:
                self._attempt_failed(str(exc))
            else:
                await self._closed
                self._connection = None
            delay = self._retry_delay()
            if delay is None:
                break
            await asyncio.sleep(delay)

    def _ended(self, connection) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def _end(self, timeout: float) -> None:
        keeper = self._keeper
        if keeper is None:
            return
        if self._connection is not None:
            self._close()  # _on_closed, then the keeper sees _stopping and returns
            await asyncio.wait({keeper}, timeout=timeout)
        keeper.cancel()  # waiting to retry, or the close did not finish in time
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
