"""Account closure fan-out: when the shop closes an account, every listener (erasure) hears of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

AccountClosedHook = Callable[[str], Awaitable[object]]


class AccountClosure:
    def __init__(self) -> None:
        self.hooks: list[AccountClosedHook] = []

    def subscribe(self, hook: AccountClosedHook) -> None:
        self.hooks.append(hook)

    async def closed(self, subject: str) -> None:
        for hook in self.hooks:
            await hook(subject)
