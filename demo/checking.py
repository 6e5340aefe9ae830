"""What the checks of ``scripts/demo.sh --check`` share: the steps as they are printed, waiting
for a condition, the demo's CLIs and HTTP APIs, and the staff user's Matrix session (the test
suite's staff client, an E2EE device when the demo runs with encryption)."""

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

# ``tests`` is on the path through ``common``.
import common  # noqa: F401

from tests.infra.staff import StaffClient, StaffError

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
    """The staff user's Matrix session: invites, joins, reading and answering. With
    ``encrypted`` (the demo runs with encryption allowed) the client is an E2EE device, as
    Element is: it encrypts what it sends to encrypted rooms and decrypts what it reads."""

    def __init__(self, matrix: StaffClient, expect_encrypted: bool = False) -> None:
        self.matrix = matrix
        self.client = matrix.nio
        self.known_rooms: set[str] = set()
        #: DEMO_E2EE=1: every new portal room must be encrypted (:meth:`check_encrypted`)
        self.expect_encrypted = expect_encrypted

    @classmethod
    async def login(
        cls, base_url: str, user: str, password: str, *, encrypted: bool, expect_encrypted: bool
    ) -> Staff:
        try:
            matrix = await StaffClient.login(
                base_url, user, password, device_name="demo check", encrypted=encrypted
            )
        except StaffError as e:
            raise CheckFailed(str(e)) from None
        staff = cls(matrix, expect_encrypted)
        await matrix.sync_once(0)
        staff.known_rooms = set(matrix.joined_rooms) | set(matrix.pending_invites)
        return staff

    async def close(self) -> None:
        try:
            await self.client.logout()
        except Exception:
            pass
        await self.matrix.close()

    async def wait_for_invite(self, marker: str) -> str:
        """The new room the bridge invites the staff user to whose state names ``marker``
        (the portal's topic and alias name the remote chat; other invites are not ours)."""

        async def invite() -> str | None:
            await self.matrix.sync_once(3)
            for room_id, invite_state in self.matrix.pending_invites.items():
                if room_id not in self.known_rooms and marker in json.dumps(invite_state):
                    return room_id
            return None

        room_id: str = await wait("an invite to the portal room", invite)
        self.known_rooms.add(room_id)
        return room_id

    async def join(self, room_id: str) -> None:
        try:
            await self.matrix.join(room_id)
        except StaffError as e:
            raise CheckFailed(str(e)) from None

    async def wait_for_message(
        self, room_id: str, text: str, *, contains: bool = False, after: str | None = None
    ) -> dict[str, Any]:
        """The newest message ``text`` (or containing it) in the room; with ``after`` (an
        event id) only one newer than that event."""

        async def message() -> dict[str, Any] | None:
            if self.matrix.encrypted:
                await self.matrix.sync_once(0)  # room keys come with /sync
            for event in reversed(await self.matrix.room_messages(room_id, limit=50)):
                if after is not None and event.get("event_id") == after:
                    return None
                body = body_of(event)
                if body == text or (contains and text in body):
                    return dict(event)
            return None

        found: dict[str, Any] = await wait(f"{text!r} in the portal room", message)
        return found

    async def check_encrypted(
        self, steps: Steps, channel: str, room_id: str, messages: dict[str, str]
    ) -> None:
        """With DEMO_E2EE=1: the room is encrypted and the homeserver holds each of
        ``messages`` (event id: the text this client read or wrote) only as ciphertext."""
        if not self.expect_encrypted:
            return
        steps.begin(f"{channel}: the room is encrypted, the homeserver holds only ciphertext")
        if not await self.matrix.room_is_encrypted(room_id):
            raise CheckFailed(f"the room {room_id} is not encrypted")
        for event_id, text in messages.items():
            room, event = urllib.parse.quote(room_id), urllib.parse.quote(event_id)
            path = f"/_matrix/client/v3/rooms/{room}/event/{event}"
            stored = await self.matrix.api("GET", path)
            clear = text in json.dumps(stored, ensure_ascii=False)
            if stored.get("type") != "m.room.encrypted" or clear:
                raise CheckFailed(f"the homeserver holds {text!r} in the clear: {stored}")
            algorithm = stored["content"].get("algorithm")
        steps.ok(f"{len(messages)} messages stored as m.room.encrypted ({algorithm})")

    async def read_by(self, room_id: str, event_id: str, user: str) -> bool:
        """Whether ``user`` has a read receipt on ``event_id``, from a fresh sync of the room.
        The filter is new each time: Synapse answers a repeated identical initial sync from its
        response cache."""
        room_filter = json.dumps({
            "room": {"rooms": [room_id], "timeline": {"limit": 1}},
            "account_data": {"types": [f"nonce.{time.monotonic_ns()}"]},
        })  # fmt: skip
        query = urllib.parse.urlencode({"filter": room_filter})
        data = await self.matrix.api("GET", f"/_matrix/client/v3/sync?{query}")
        joined = data.get("rooms", {}).get("join", {}).get(room_id, {})
        for event in joined.get("ephemeral", {}).get("events", []):
            if event.get("type") == "m.receipt":
                readers = event["content"].get(event_id, {}).get("m.read", {})
                if user in readers:
                    return True
        return False

    async def answer(self, room_id: str, text: str) -> str:
        """Send ``text`` (encrypted in an encrypted room); its event id."""
        try:
            return await self.matrix.send_text(room_id, text)
        except StaffError as e:
            raise CheckFailed(f"sending the answer failed: {e}") from None
