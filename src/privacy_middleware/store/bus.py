"""A small invalidation bus: "this key changed, drop your cached copy".

`LocalBus` serves one process (tests, a single instance); `RedisBus` carries the same messages
between instances through Redis pub/sub. Messages are hints, not data: a lost message costs at most
one cache TTL of staleness, so there is no persistence or replay. Payloads must not carry personal
values beyond the opaque ids needed to find the cache entry.
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

Handler = Callable[[str], Awaitable[None]]
log = logging.getLogger(__name__)


class Bus(Protocol):
    async def publish(self, topic: str, payload: str) -> None: ...

    def subscribe(self, topic: str, handler: Handler) -> None: ...

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

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._handlers.clear()


class RedisBus:
    """Redis pub/sub delivery. Channels are `<prefix><topic>`; a reader task dispatches messages.

    The publishing instance receives its own messages too (handlers must be idempotent, which cache
    invalidation is). If Redis drops, the reader reconnects with a capped back-off.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "privacy:",
        client: aioredis.Redis | None = None,
        poll_timeout: float = 1.0,
    ) -> None:
        self._own_client = client is None
        self._client: aioredis.Redis = client if client is not None else aioredis.Redis.from_url(url)
        self.prefix = prefix
        self.poll_timeout = poll_timeout
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None

    def channel(self, topic: str) -> str:
        return self.prefix + topic

    async def publish(self, topic: str, payload: str) -> None:
        await self._client.publish(self.channel(topic), payload)

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Register a handler; call before `start()` (later topics are picked up on reconnect)."""
        self._handlers[topic].append(handler)

    async def start(self) -> None:
        """Subscribe to every registered topic and start the reader.

        Returns once subscribed; if Redis is unreachable it logs, returns, and the reader keeps
        retrying (the app starts; caches fall back to their TTL until Redis is back).
        """
        if self._task is not None:
            return
        try:
            await self._connect()
        except (RedisError, OSError) as exc:
            log.warning("redis bus unavailable at start (%s); retrying in background", exc.__class__.__name__)
            await self._drop_pubsub()
        self._task = asyncio.create_task(self._run(), name="privacy-redis-bus")

    async def _connect(self) -> None:
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        channels = [self.channel(topic) for topic in self._handlers]
        if channels:
            await self._pubsub.subscribe(*channels)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self._pubsub is None:
                    await self._connect()
                if not self._handlers:
                    await asyncio.sleep(self.poll_timeout)
                    continue
                message = await self._pubsub.get_message(timeout=self.poll_timeout)
                backoff = 0.1
                if message is None or message.get("type") != "message":
                    continue
                channel = message["channel"]
                channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                data = message["data"]
                payload = data.decode() if isinstance(data, bytes) else str(data)
                topic = channel[len(self.prefix) :] if channel.startswith(self.prefix) else channel
                await _deliver(list(self._handlers.get(topic, ())), topic, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the reader alive whatever the client raises
                log.warning("redis bus reader error (%s); reconnecting", exc.__class__.__name__)
                await self._drop_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop_pubsub()
        if self._own_client:
            await self._client.aclose()
