"""The live stream: ingest's consumer that fans committed changes out to every browser as
server-sent events; events carry their database id, so a reconnecting browser resumes."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from tools.hub.serve.ingest import Message

KEEPALIVE_S = 15.0


class Broadcaster:
    """Thread-safe publish, asyncio subscribers (one bounded queue per browser)."""

    def __init__(self, max_queue: int = 2000):
        self.max_queue = max_queue
        self._subs: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self._lock = threading.Lock()

    def publish(self, kind: str, data: Any, id: int | None = None) -> None:
        item = (kind, json.dumps(data, default=repr, separators=(",", ":")), id)
        with self._lock:
            subs = list(self._subs)
        for loop, q in subs:
            loop.call_soon_threadsafe(self._offer, q, item)

    def _offer(self, q: asyncio.Queue, item: tuple) -> None:
        if q.qsize() >= self.max_queue:  # a browser that does not read: end its stream; it
            if q.qsize() == self.max_queue:  # reconnects and resumes from its last event id
                q.put_nowait(None)
            return
        q.put_nowait(item)

    async def subscribe(
        self, replay: Callable[[], list[tuple[str, Any, int | None]]] | None = None
    ) -> AsyncIterator[str]:
        """SSE text: first what ``replay`` returns (missed events), then live items."""
        q: asyncio.Queue = asyncio.Queue(self.max_queue + 1)
        entry = (asyncio.get_running_loop(), q)
        with self._lock:
            self._subs.add(entry)
        try:
            yield "retry: 1000\n\n"
            for kind, data, id in replay() if replay else []:
                yield _sse(kind, json.dumps(data, default=repr), id)
            while True:
                try:
                    item = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if item is None:
                    return
                yield _sse(*item)
        finally:
            with self._lock:
                self._subs.discard(entry)


def _sse(kind: str, data: str, id: int | None) -> str:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n"


class LiveFeed:
    """Ingest consumer: events, alert changes, unit state changes, invalid-message counts."""

    def __init__(self, broadcaster: Broadcaster, alert_of: Callable[[int], dict]):
        self.b, self.alert_of = broadcaster, alert_of

    def __call__(self, msg: Message) -> None:
        if msg.kind == "events" and msg.row is not None:
            self.b.publish(
                "event", event_view(msg.row, msg.site, msg.received_at, msg.body), msg.row
            )
        if msg.alert is not None:
            self.b.publish("alert", self.alert_of(msg.alert["id"]))
        if msg.kind in ("status", "birth", "metrics", "config/state"):
            self.b.publish("unit", {"site": msg.site, "unit": msg.unit, "kind": msg.kind})


def event_view(row: int, site: str, received_at: float, body: dict) -> dict:
    """An event as the API and the stream show it."""
    return {"id": row, "received_at": received_at, **body, "site": site}
