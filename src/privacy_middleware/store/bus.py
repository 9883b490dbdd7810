"""A small invalidation bus: "this key changed, drop your cached copy".

`LocalBus` serves one process (tests, a single instance); `RedisBus` carries the same messages
between instances through Redis Streams and resumes after a reconnect. Messages are hints, not the
record: what must never be missed (an erasure) is written to the store first and re-read there on
reconnect and at a bounded interval. Payloads must not carry personal values beyond the opaque ids
needed to find the cache entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from .redis_client import redis_from_url

Handler = Callable[[str], Awaitable[None]]
log = logging.getLogger(__name__)


class Bus(Protocol):
    async def publish(self, topic: str, payload: str) -> None: ...

    def subscribe(self, topic: str, handler: Handler) -> None: ...

    def on_reconnect(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Called after the bus reconnected (messages may have been lost while it was away)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


async def _deliver(handlers: list[Handler], topic: str, payload: str) -> None:
    for handler in handlers:
        try:
            await handler(payload)
        except Exception:  # a broken subscriber must not break the publisher or other subscribers
            log.exception("bus handler failed for topic %s", topic)


class LocalBus:
    """In-process delivery: `publish` awaits every handler of the topic."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    async def publish(self, topic: str, payload: str) -> None:
        await _deliver(list(self._handlers.get(topic, ())), topic, payload)

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    def on_reconnect(self, hook: Callable[[], Awaitable[None]]) -> None:
        return None  # in-process delivery never disconnects

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._handlers.clear()


class RedisBus:
    """Redis Streams delivery: one stream `<prefix><topic>` per topic, trimmed to about `max_len`.

    A reader task follows every subscribed stream from the id it last saw, so a dropped connection
    resumes where it stopped instead of losing what was published meanwhile (pub/sub would).
    Reconnect hooks run after each reconnection: state that cannot be replayed (Redis restarted
    and lost its streams) is re-read from the store there. The publishing instance receives its
    own messages too (handlers must be idempotent, which cache invalidation is).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "privacy:",
        client: aioredis.Redis | None = None,
        poll_timeout: float = 1.0,
        max_len: int = 10_000,
    ) -> None:
        self._own_client = client is None
        # A socket timeout beyond the blocking read's own wait: no call of the bus waits forever on a
        # connection the server stopped answering.
        self._client: aioredis.Redis = (
            client
            if client is not None
            else redis_from_url(url, socket_connect_timeout=2.0, socket_timeout=poll_timeout + 5.0)
        )
        self.prefix = prefix
        self.poll_timeout = poll_timeout
        self.max_len = max_len
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._reconnect_hooks: list[Callable[[], Awaitable[None]]] = []
        self._last_ids: dict[Any, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = asyncio.Event()

    def channel(self, topic: str) -> str:
        # One hash tag for every stream: a Redis Cluster keeps them on one slot, so one XREAD follows all.
        return f"{self.prefix}{{bus}}{topic}"

    async def publish(self, topic: str, payload: str) -> None:
        await self._client.xadd(self.channel(topic), {"p": payload}, maxlen=self.max_len, approximate=True)

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Register a handler; a topic added after `start()` is followed from its newest message."""
        self._handlers[topic].append(handler)

    def on_reconnect(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._reconnect_hooks.append(hook)

    async def start(self) -> None:
        """Start the reader; returns at once even if Redis is unreachable (it keeps retrying)."""
        if self._task is not None:
            return
        self._closing = False
        try:
            await self._position()
        except (RedisError, OSError) as exc:
            log.warning("redis bus unavailable at start (%s); retrying in background", exc.__class__.__name__)
        self._task = asyncio.create_task(self._run(), name="privacy-redis-bus")

    async def _position(self) -> None:
        """Start new topics at their newest message (earlier ones are not ours to replay)."""
        for topic in list(self._handlers):
            stream = self.channel(topic)
            if stream not in self._last_ids:
                newest = await self._client.xrevrange(stream, count=1)
                self._last_ids[stream] = newest[0][0] if newest else "0-0"
        self.connected.set()

    async def _run(self) -> None:
        backoff = 0.1
        lost = False
        while not self._closing:
            try:
                if not self._handlers:
                    await asyncio.sleep(self.poll_timeout)
                    continue
                await self._position()
                if lost:
                    lost = False
                    await self._reconnected()
                replies: Any = await self._client.xread(
                    {k: v for k, v in self._last_ids.items()}, block=int(self.poll_timeout * 1000)
                )
                backoff = 0.1
                for stream, messages in replies or []:
                    name = stream.decode() if isinstance(stream, bytes) else str(stream)
                    topic = name[len(self.channel("")) :]
                    for message_id, fields in messages:
                        self._last_ids[name] = message_id
                        data = fields.get(b"p", fields.get("p", b""))
                        payload = data.decode() if isinstance(data, bytes) else str(data)
                        await _deliver(list(self._handlers.get(topic, ())), topic, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the reader alive whatever the client raises
                task = asyncio.current_task()
                if self._closing or (task is not None and task.cancelling()):
                    return  # the client turned our cancellation into an error: we are closing
                if not lost:
                    log.warning("redis bus reader error (%s); reconnecting", exc.__class__.__name__)
                lost = True
                self.connected.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _reconnected(self) -> None:
        log.warning("redis bus reconnected; resuming from the last message seen")
        for hook in list(self._reconnect_hooks):
            try:
                await hook()
            except Exception:
                log.exception("bus reconnect hook failed")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            # Bounded: the loop also ends on the flag, for when the client's read timeout swallows the
            # cancellation; a reader that still has not ended is left behind rather than blocking shutdown.
            done, _ = await asyncio.wait({self._task}, timeout=self.poll_timeout + 10.0)
            if not done:
                log.warning("redis bus reader did not stop in time; leaving it behind")
            else:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    self._task.result()
            self._task = None
        self._closing = False  # a closed bus may be started again
        if self._own_client:
            await self._client.aclose()
