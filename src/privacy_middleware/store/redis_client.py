"""Redis clients from PRIVACY_REDIS_URL: a single server, a Sentinel-managed master, or a Cluster.

- `redis://[:password@]host:port/db`, `rediss://...`, `unix://...`: one server.
- `redis+sentinel://[:password@]host1:26379,host2:26379/service_name[/db]`: the current master of
  `service_name`, found through the listed sentinels (followed across failovers).
- `redis+cluster://[:password@]host:port[,host:port...]`: a Redis Cluster (any node; the rest is
  discovered). Keys used together (a login attempt's counters, the bus streams) share a hash tag,
  so their scripts and reads stay on one slot.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from ..errors import ConfigError

SENTINEL = "redis+sentinel"
CLUSTER = "redis+cluster"


class _SentinelMaster(Redis):
    """The master found through sentinels; closing it also closes the sentinel connections."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", []):
            await sentinel.aclose()


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
        try:
            hosts.append((host or part.strip(), int(port) if port else default_port))
        except ValueError:
            raise ConfigError("PRIVACY_REDIS_URL names a host with an invalid port") from None
    return hosts


def _password(netloc: str) -> str | None:
    if "@" not in netloc:
        return None
    userinfo = netloc.rsplit("@", 1)[0]
    return unquote(userinfo.split(":", 1)[1]) if ":" in userinfo else unquote(userinfo) or None


def is_cluster(url: str) -> bool:
    return url.split("://", 1)[0].lower() == CLUSTER


def redis_from_url(url: str, **options: Any) -> Redis:
    """A client for any of the URL forms above (`options` go to every connection)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == SENTINEL:
        parts = urlsplit(url)
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ConfigError("a redis+sentinel:// URL needs the master's service name as its path")
        db = int(path[1]) if len(path) > 1 and path[1].isdigit() else 0
        password = _password(parts.netloc)
        sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8.2 on
            _hosts(parts.netloc, 26379),
            sentinel_kwargs={k: v for k, v in options.items() if k.startswith("socket_")},
            password=password,
            db=db,
            **options,
        )
        master: Redis = sentinel.master_for(path[0], redis_class=_SentinelMaster)
        return master
    if scheme == CLUSTER:
        parts = urlsplit(url)
        nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc, 6379)]
        cluster = RedisCluster(startup_nodes=nodes, password=_password(parts.netloc), **options)
        return cast(Redis, cluster)  # the commands the middleware uses are the same on a cluster client
    try:
        single: Redis = Redis.from_url(url, **options)
        return single
    except ValueError:
        raise ConfigError(
            "PRIVACY_REDIS_URL is not a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL"
        ) from None
