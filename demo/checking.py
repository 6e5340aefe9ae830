"""What the checks of ``scripts/demo.sh --check`` share: the steps as they are printed, waiting
for a condition, the demo's CLIs and HTTP APIs, and the staff user's Matrix session."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    JoinResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncResponse,
)

STEP_TIMEOUT = 90.0
TOTAL_TIMEOUT = 400.0


class CheckFailed(Exception):
    pass


class Steps:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.step_started = self.started

    def begin(self, text: str) -> None:
        self.step_started = time.monotonic()
        print(f"  - {text} ...", end="", flush=True)

    def ok(self, detail: str = "") -> None:
        took = time.monotonic() - self.step_started
        print(f" ok ({took:.1f} s){': ' + detail if detail else ''}", flush=True)


async def wait(what: str, probe: Any, timeout: float = STEP_TIMEOUT) -> Any:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.3)


def body_of(event: dict[str, Any]) -> str:
    content = event.get("content") or {}
    body = content.get("body")
    return body if isinstance(body, str) else ""


async def run_cli(script: str, *args: str) -> str:
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(Path(__file__).with_name(script)), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise CheckFailed(f"{script} {args[0]} failed: {result.stdout}{result.stderr}".strip())
    return result.stdout.strip()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


class Staff:
    """The staff user's Matrix session: invites, joins, reading and answering."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.known_rooms: set[str] = set()

    async def wait_for_invite(self, marker: str) -> str:
        """The new room the bridge invites the staff user to whose state names ``marker``
        (the portal's topic and alias name the remote chat; other invites are not ours)."""

        async def invite() -> str | None:
            resp = await self.client.sync(timeout=3000)
            if not isinstance(resp, SyncResponse):
                return None
            for room_id, info in resp.rooms.invite.items():
                state = json.dumps([getattr(e, "source", None) for e in info.invite_state])
                if room_id not in self.known_rooms and marker in state:
                    return room_id
            return None

        room_id: str = await wait("an invite to the portal room", invite)
        self.known_rooms.add(room_id)
        return room_id

    async def join(self, room_id: str) -> None:
        joined = await self.client.join(room_id)
        if not isinstance(joined, JoinResponse):
            raise CheckFailed(f"join failed: {joined}")

    async def wait_for_message(
        self, room_id: str, text: str, *, contains: bool = False, after: str | None = None
    ) -> dict[str, Any]:
        """The newest message ``text`` (or containing it) in the room; with ``after`` (an
        event id) only one newer than that event."""

        async def message() -> dict[str, Any] | None:
            resp = await self.client.room_messages(room_id, limit=50)
            if not isinstance(resp, RoomMessagesResponse):
                return None
            for event in resp.chunk:  # newest first
                if after is not None and event.event_id == after:
                    return None
                body = body_of(event.source)
                if body == text or (contains and text in body):
                    return dict(event.source)
            return None

        found: dict[str, Any] = await wait(f"{text!r} in the portal room", message)
        return found

    async def read_by(self, room_id: str, event_id: str, user: str) -> bool:
        """Whether ``user`` has a read receipt on ``event_id``, from a fresh sync of the room.
        The filter is new each time: Synapse answers a repeated identical initial sync from its
        response cache."""
        room_filter = json.dumps({
            "room": {"rooms": [room_id], "timeline": {"limit": 1}},
            "account_data": {"types": [f"nonce.{time.monotonic_ns()}"]},
        })  # fmt: skip
        query = urllib.parse.urlencode({"filter": room_filter})
        url = f"{self.client.homeserver}/_matrix/client/v3/sync?{query}"
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {self.client.access_token}"}
        )

        def fetch() -> Any:
            with urllib.request.urlopen(request, timeout=30) as r:
                return json.loads(r.read())

        data = await asyncio.to_thread(fetch)
        joined = data.get("rooms", {}).get("join", {}).get(room_id, {})
        for event in joined.get("ephemeral", {}).get("events", []):
            if event.get("type") == "m.receipt":
                readers = event["content"].get(event_id, {}).get("m.read", {})
                if user in readers:
                    return True
        return False

    async def answer(self, room_id: str, text: str) -> str:
        sent = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text}
        )
        if not isinstance(sent, RoomSendResponse):
            raise CheckFailed(f"sending the answer failed: {sent}")
        return str(sent.event_id)
