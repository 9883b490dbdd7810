"""One leader for background work: an advisory lock (PostgreSQL) or a file lock (SQLite), with a
term that fences a leader who lost the lock; killing the leader's process hands over the work."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from privacy_middleware.store import Database
from privacy_middleware.store.leader import Leadership, current_term, lead
from support.processes import reap

pytestmark = pytest.mark.anyio


async def test_only_one_instance_leads_and_a_released_term_is_fenced(database: Database) -> None:
    other = Database(str(database.url.render_as_string(hide_password=False)))
    try:
        first, second = Leadership(database, holder="a"), Leadership(other, holder="b")
        assert await first.try_acquire() == 1
        assert await second.try_acquire() is None
        assert await first.still_leading()
        await first.release()
        assert await second.try_acquire() == 2
        first.term = 1  # an old leader that wakes up believing it still leads ...
        assert not await first.still_leading()  # ... is fenced by the newer term
        assert await second.still_leading()
        await second.release()
    finally:
        await other.dispose()


async def test_background_work_runs_on_the_leader_only(database: Database) -> None:
    other = Database(str(database.url.render_as_string(hide_password=False)))
    runs: list[tuple[str, int]] = []
    stop = asyncio.Event()

    def worker(name: str):  # type: ignore[no-untyped-def]
        async def work(term: int) -> None:
            runs.append((name, term))

        return work

    try:
        tasks = [
            asyncio.create_task(lead(Leadership(db), worker(n), interval=0.05, retry_seconds=0.05, stop=stop))
            for n, db in (("a", database), ("b", other))
        ]
        await asyncio.sleep(0.6)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        await other.dispose()
    assert len(runs) >= 3
    # One instance did all the work; when its lease ended at the stop, the other took none over.
    assert len({name for name, _ in runs}) == 1
    assert len({term for _, term in runs}) == 1


async def test_an_instance_that_takes_over_while_stopping_starts_no_work(database: Database) -> None:
    """The stop reaches every instance: the leader releases its lock, and another instance whose
    attempt lands just after that release takes the leadership but runs nothing under it."""
    other = Database(str(database.url.render_as_string(hide_password=False)))
    leader, follower = Leadership(database, holder="a"), Leadership(other, holder="b")
    released = asyncio.Event()
    runs: list[str] = []
    stop = asyncio.Event()
    assert await leader.try_acquire() == 1
    release = leader.release

    async def release_then_signal() -> None:
        await release()
        released.set()

    async def work(term: int) -> None:
        runs.append(f"b:{term}")

    leader.release = release_then_signal  # type: ignore[method-assign]
    acquire = follower.try_acquire

    async def acquire_after_the_release() -> int | None:
        await released.wait()  # an attempt in flight when the leader let go
        return await acquire()

    follower.try_acquire = acquire_after_the_release  # type: ignore[method-assign]
    try:
        task = asyncio.create_task(lead(follower, work, interval=0.05, retry_seconds=0.05, stop=stop))
        await asyncio.sleep(0.1)
        stop.set()
        await leader.release()
        await asyncio.wait_for(task, 10)
        assert runs == []
        assert await current_term(database, "maintenance") == 2  # it did take the leadership, then let go
        successor = Leadership(database, holder="c")
        assert await successor.try_acquire() == 3
        await successor.release()
    finally:
        await other.dispose()


LEADER = textwrap.dedent(
    """
    import asyncio, sys
    from privacy_middleware.store import Database
    from privacy_middleware.store.leader import Leadership

    async def main():
        leadership = Leadership(Database(sys.argv[1]), holder="doomed")
        print(await leadership.try_acquire(), flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.postgres
async def test_killing_the_leader_hands_leadership_over_with_a_new_term(postgres_url: str) -> None:
    database = Database(postgres_url)
    await database.upgrade()
    process = subprocess.Popen([sys.executable, "-c", LEADER, postgres_url], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert (await asyncio.to_thread(process.stdout.readline)).strip() == b"1"
        successor = Leadership(database, holder="successor")
        assert await successor.try_acquire() is None
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)
        killed_at = time.monotonic()
        while (term := await successor.try_acquire()) is None:
            assert time.monotonic() - killed_at < 5, "no new leader 5 s after the leader was killed"
            await asyncio.sleep(0.05)
        assert term == 2 and await current_term(database, "maintenance") == 2
        await successor.release()
    finally:
        reap(process)
        await database.dispose()
