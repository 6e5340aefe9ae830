"""``deadletters``: an admin sees and retries only the dead letters of the accounts they are an
admin of (a partner company's admin must not read another account's lost messages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.config import parse
from bridge.core.commands.deadletters import deadletters_command
from bridge.core.services import Services
from bridge.db import DeadLetter, Portal, QueueItem
from tests.test_config import example


@dataclass
class _Dispatcher:
    submitted: list[QueueItem] = field(default_factory=list)

    def submit(self, item: QueueItem) -> None:
        self.submitted.append(item)


@dataclass
class _Ctx:
    services: Services
    sender: str


def _services(config: Any, dispatcher: _Dispatcher) -> Services:
    connectors: Any = dict.fromkeys(config.channels)
    none: Any = None
    return Services(config, connectors, none, none, none, none, dispatcher)  # type: ignore[arg-type]


def _config() -> Any:
    def mutate(d: dict[str, Any]) -> None:
        d["channels"]["partner-hook"] = {**d["channels"]["support-webhook"], "staff": []}
        d["permissions"]["@lead:partner.org"] = {"partner-hook": "admin"}

    return parse(example(mutate))


async def _dead(account: str, n: int) -> DeadLetter:
    """A remote item of ``account`` and a Matrix item of its portal room, both given up."""
    remote = await QueueItem.enqueue(f"rm:{account}/c", "remote", {"account": account, "n": n})
    await DeadLetter.bury(remote, "remote failed")
    room = f"!{account}:example.com"
    await Portal(account, f"c{n}", room, created_at=0).insert()
    matrix = await QueueItem.enqueue(f"mx:{room}", "matrix", {"room_id": room, "n": n})
    return await DeadLetter.bury(matrix, "matrix failed", room)


async def test_admins_see_and_retry_only_their_accounts(database: object) -> None:
    await _dead("support-webhook", 1)
    partner = await _dead("partner-hook", 2)
    dispatcher = _Dispatcher()
    services = _services(_config(), dispatcher)
    lead = _Ctx(services, "@lead:partner.org")
    boss = _Ctx(services, "@admin:example.com")  # admin of every account

    listed = await deadletters_command(lead, [])  # type: ignore[arg-type]
    assert listed.startswith("2 dead letter(s):")
    assert "partner-hook" in listed and "support-webhook" not in listed
    assert (await deadletters_command(boss, [])).startswith("4 dead letter(s):")  # type: ignore[arg-type]

    others = [d.id for d in await DeadLetter.all() if d.id not in (partner.id, partner.id - 1)]
    answer = await deadletters_command(lead, ["retry", str(others[0])])  # type: ignore[arg-type]
    assert answer == f"There is no dead letter {others[0]}. See `deadletters`."
    assert await deadletters_command(lead, ["retry", "all"]) == (  # type: ignore[arg-type]
        f"Queued again: {partner.id - 1}, {partner.id}."
    )
    assert {i.payload["n"] for i in dispatcher.submitted} == {2}
    assert sorted(d.id for d in await DeadLetter.all()) == sorted(others)
