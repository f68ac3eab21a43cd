"""The worker's bulk requests to Elasticsearch, and when the events behind them may be committed.

Faust commits an event's offset once the event is acked (its references are all released).
``take_events`` releases a batch when the agent asks for the next one, which with requests in
flight is before the batch is indexed, and from its ``finally`` when the agent stops mid-batch.
So each event gets ``HELD`` extra references (``hold``) while its batch is being indexed,
released (``release``) only after Elasticsearch indexed every document the batch produced or
they were dead-lettered: two, so that the event stays held even where nothing else referenced
it (Faust's test context). A batch interrupted by a shutdown (its request cancelled) stays
uncommitted and is consumed again (``_id`` makes that harmless).

Stopping: Faust does not wait for held events (``stream_wait_empty`` is off: with
Elasticsearch away a bulk request retries for as long as it is away, and the worker would not
stop). Instead ``InFlight.settle`` takes no new batch and gives the running requests
``STOP_GRACE_S`` to finish before cancelling them; Faust then commits what was acked and no
more.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

MAX_IN_FLIGHT = 2
HELD = 2
# How long a stopping worker lets running bulk requests finish before abandoning them.
STOP_GRACE_S = 5.0


def hold(events: Iterable[Any]) -> None:
    for event in events:
        event.message.incref(HELD)


def release(events: Iterable[Any]) -> None:
    for event in events:
        for _ in range(HELD):
            event.ack()


class InFlight:
    """Running bulk requests, at most ``MAX_IN_FLIGHT``, and how they end when the worker
    stops."""

    def __init__(self) -> None:
        self.tasks: deque[asyncio.Future] = deque()
        self.closing = False

    async def room(self) -> None:
        """Wait until another request may start; a finished request raises here what it
        raised."""
        tasks = self.tasks
        while tasks and (len(tasks) >= MAX_IN_FLIGHT or tasks[0].done()):
            await _finished(tasks[0])
            tasks.popleft()

    def start(self, work: Any) -> None:
        self.tasks.append(asyncio.ensure_future(work))

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()

    async def settle(self, timeout: float) -> None:
        """Start no new request; wait up to ``timeout`` for the running ones, cancel the rest.

        A finished request has acked its events; a cancelled one leaves them unacked, so their
        offsets are not committed and the next worker consumes them again."""
        self.closing = True
        if self.tasks:
            _done, pending = await asyncio.wait(list(self.tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)


async def _finished(task: asyncio.Future) -> None:
    """Wait for a bulk request; raise what it raised unless ``settle`` cancelled it."""
    await asyncio.wait((task,))
    if not task.cancelled():
        task.result()
