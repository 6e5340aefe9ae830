"""Updates: pushed by tests, handed out by getUpdates or POSTed to the webhook."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp

from tests.infra.ports import LOOPBACK

from .. import updates as tg
from ..updates import Json
from .params import _Params, _read_multipart
from .records import (
    ApiCall,
    ApiError,
    WebhookDelivery,
    _Described,
    _Pending,
    _UserState,
    _Webhook,
    bad_request,
)
from .state import SimulatorState

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Without ``allowed_updates`` Telegram sends every update type except these.
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
CONFLICT_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
    "running"
)


class UpdateDelivery(SimulatorState):
    """Updates pushed by tests, their queue, getUpdates and the webhook (setWebhook, the worker
    that POSTs, and method calls in the webhook's answer)."""

    def push_update(self, update: Mapping[str, Any]) -> Json:
        """Deliver an update (built with ``updates``): it gets the next ``update_id`` and is queued
        for getUpdates, or POSTed to the webhook when one is set. Messages in it enter the chat
        history (so the bot can reply, edit-check, react), chats and users are registered.
        Returns the update as delivered."""
        return self._enqueue(update, duplicates=0)

    def block_bot(self, user_id: int, blocked: bool = True) -> Json:
        """The user blocks (``blocked=False``: unblocks) the bot, as Telegram shows it: sends to
        the private chat answer 403 "Forbidden: bot was blocked by the user" (or work again),
        and a ``my_chat_member`` update (the bot's status ``kicked``, or ``member``) is
        delivered. Returns the update as delivered."""
        self.set_blocked(user_id, blocked)
        user = self._users[user_id].user
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        date = int(self.clock.now())
        chat = tg.private_chat(user)
        return self.push_update(
            tg.my_chat_member_update(chat, user, self.bot_user, old=old, new=new, date=date)
        )

    def deliver_webhook_twice(self, update: Mapping[str, Any]) -> Json:
        """Like ``push_update`` but the webhook receives the same update twice, as happens when
        Telegram did not see the first answer."""
        return self._enqueue(update, duplicates=1)

    def _enqueue(self, update: Mapping[str, Any], *, duplicates: int) -> Json:
        payload = {k: copy.deepcopy(v) for k, v in update.items() if k != "update_id"}
        self._next_update_id += 1
        full: Json = {"update_id": self._next_update_id, **payload}
        kind = tg.update_kind(full)
        self._observe(kind, full[kind])
        if self._accepts(kind):
            self._queue.append(_Pending(full, duplicates))
        else:
            self.filtered_updates.append(full)
        self._notify()
        return copy.deepcopy(full)

    def _accepts(self, kind: str) -> bool:
        if self._allowed_updates is None:
            return kind not in DEFAULT_EXCLUDED_UPDATES
        return kind in self._allowed_updates

    def _observe(self, kind: str, payload: Json) -> None:
        if kind in ("message", "edited_message", "channel_post", "edited_channel_post"):
            chat = payload["chat"]
            self._remember_sender(payload)
            if chat["id"] not in self._chats:
                self.add_chat(chat)
            self._replace_or_store(payload, "")
        elif kind in ("business_message", "edited_business_message"):
            bc = str(payload.get("business_connection_id", ""))
            self._business_chats[(bc, int(payload["chat"]["id"]))] = payload["chat"]
            self._remember_sender(payload)
            self._replace_or_store(payload, bc)
        elif kind == "business_connection":
            self._business[payload["id"]] = copy.deepcopy(payload)
            self._users.setdefault(int(payload["user"]["id"]), _UserState(payload["user"]))
        elif kind == "deleted_business_messages":
            key = (payload["business_connection_id"], int(payload["chat"]["id"]))
            for mid in payload["message_ids"]:
                stored = self._history.get(key, {}).get(mid)
                if stored is not None:
                    stored.deleted = True

    def _remember_sender(self, msg: Json) -> None:
        sender = msg.get("from")
        if sender and not sender.get("is_bot"):
            self._users.setdefault(int(sender["id"]), _UserState(dict(sender)))

    def _replace_or_store(self, msg: Json, bc: str) -> None:
        existing = self._history.get((bc, int(msg["chat"]["id"])), {}).get(msg["message_id"])
        if existing is not None:
            existing.message = copy.deepcopy(msg)
        else:
            self._store(copy.deepcopy(msg), outgoing=False, business_connection_id=bc)

    @property
    def pending_updates(self) -> list[Json]:
        return [copy.deepcopy(p.update) for p in self._queue]

    @property
    def allowed_updates(self) -> list[str] | None:
        """The bot's ``allowed_updates`` (None: the default set)."""
        return None if self._allowed_updates is None else list(self._allowed_updates)

    @property
    def webhook_url(self) -> str | None:
        return self._webhook.url if self._webhook else None

    @property
    def webhook_secret(self) -> str | None:
        return self._webhook.secret if self._webhook else None

    def is_confirmed(self, update_id: int) -> bool:
        """Whether the bot confirmed the update (getUpdates offset past it, or a 2xx webhook
        answer)."""
        return update_id in self._confirmed

    async def wait_for_confirmed(self, update_id: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self.wait_for(lambda: self.is_confirmed(update_id), timeout)

    async def post_webhook(
        self, update: Mapping[str, Any], *, secret: str | None = None, url: str | None = None
    ) -> WebhookDelivery:
        """POST one update to the webhook (or ``url``) right now, outside the queue, with the
        given secret header (None: no header) - e.g. to check that a wrong secret is refused."""
        target = url or (self._webhook.url if self._webhook else None)
        if target is None:
            raise RuntimeError("no webhook is set")
        body = dict(update)
        if "update_id" not in body:
            self._next_update_id += 1
            body = {"update_id": self._next_update_id, **body}
        return await self._post_update(target, body, secret, attempt=1, manual=True)

    async def _get_me(self, p: _Params) -> Json:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": True,
            "has_main_web_app": False,
        }

    def _set_allowed(self, p: _Params) -> None:
        allowed = p.get_json("allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list):
                raise bad_request("can't parse allowed_updates JSON object")
            self._allowed_updates = [str(a) for a in allowed] or None

    def _confirm_before(self, offset: int) -> None:
        if offset > 0:
            keep = [p for p in self._queue if p.update_id >= offset]
        elif offset < 0:
            keep = self._queue[offset:]
        else:
            return
        self._confirmed.update(p.update_id for p in self._queue if p not in keep)
        self._queue = keep

    async def _get_updates(self, p: _Params) -> list[Json]:
        if self._webhook is not None:
            raise ApiError(409, CONFLICT_WEBHOOK)
        offset = p.get_int("offset", 0) or 0
        limit = min(max(p.get_int("limit", 100) or 100, 1), 100)
        timeout = min(max(p.get_int("timeout", 0) or 0, 0), 50)
        self._set_allowed(p)
        self._confirm_before(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._polling += 1
        self._notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                if self._webhook is not None:
                    raise ApiError(409, "Conflict: terminated by setWebhook request")
                if generation != self._poll_generation:
                    raise ApiError(409, CONFLICT_POLL)
                ready = [q.update for q in self._queue if q.update_id >= offset][:limit]
                remaining = deadline - loop.time()
                if ready or self._closing or remaining <= 0:
                    return copy.deepcopy(ready)
                await self._wait_change(remaining)
        finally:
            self._polling -= 1

    async def _set_webhook(self, p: _Params) -> _Described:
        url = p.get_str("url")
        if not url:
            return await self._delete_webhook(p)
        parts = urlsplit(url)
        schemes = ("https",) if self.require_https_webhook else ("https", "http")
        if parts.scheme.lower() not in schemes or not parts.hostname:
            raise bad_request("invalid webhook URL specified")
        secret = p.get_str("secret_token") or ""
        if len(secret) > 256:
            raise bad_request("secret token is too long")
        if not re.fullmatch(r"[A-Za-z0-9_-]*", secret):
            raise bad_request("secret token contains unallowed characters")
        new = _Webhook(url, secret, p.get_int("max_connections", 40) or 40)
        drop = p.get_bool("drop_pending_updates")
        self._set_allowed(p)
        if new == self._webhook and not drop:
            return _Described(True, "Webhook is already set")
        if drop:
            self._drop_pending()
        self._webhook = new
        self._last_error = None
        self._notify()
        return _Described(True, "Webhook was set")

    def _drop_pending(self) -> None:
        self._confirmed.update(p.update_id for p in self._queue)
        self._queue.clear()

    async def _delete_webhook(self, p: _Params) -> _Described:
        if p.get_bool("drop_pending_updates"):
            self._drop_pending()
        was_set, self._webhook = self._webhook is not None, None
        self._notify()
        return _Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    async def _get_webhook_info(self, p: _Params) -> Json:
        info: Json = {
            "url": self._webhook.url if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if self._webhook is not None:
            info["max_connections"] = self._webhook.max_connections
            info["ip_address"] = LOOPBACK
        if self._last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._last_error
        if self._allowed_updates is not None:
            info["allowed_updates"] = list(self._allowed_updates)
        return info

    async def _webhook_worker(self) -> None:
        while not self._closing:
            hook = self._webhook
            if hook is None or not self._queue:
                await self._wait_change(None)
                continue
            item = self._queue[0]
            item.deliveries += 1
            delivery = await self._post_update(
                hook.url, item.update, hook.secret or None, attempt=item.deliveries
            )
            if not self._queue or self._queue[0] is not item:
                continue
            if delivery.ok:
                if item.duplicates > 0:
                    item.duplicates -= 1
                    continue
                self._queue.pop(0)
                self._confirmed.add(item.update_id)
            else:
                item.failures += 1
                reason = delivery.error or f"Wrong response from the webhook: {delivery.status}"
                self._last_error = (int(self.clock.now()), reason)
                if item.failures >= self.webhook_max_attempts:
                    self._queue.pop(0)
                    self.webhook_dropped.append(item.update)
                else:
                    await asyncio.sleep(self.webhook_retry_delay)
            self._notify()

    async def _post_update(
        self, url: str, update: Json, secret: str | None, *, attempt: int, manual: bool = False
    ) -> WebhookDelivery:
        assert self._http is not None
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        body = json.dumps(update, ensure_ascii=False).encode()
        delivery = WebhookDelivery(
            int(update["update_id"]), url, None, secret, attempt, None, manual
        )
        reply: tuple[str, _Params] | None = None
        try:
            timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
            async with self._http.post(url, data=body, headers=headers, timeout=timeout) as resp:
                delivery.status = resp.status
                if 200 <= resp.status <= 299:
                    reply = await self._webhook_reply(resp)
                else:
                    delivery.error = (
                        f"Wrong response from the webhook: {resp.status} {resp.reason}"
                    )
                    await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        self.webhook_deliveries.append(delivery)
        self._notify()
        if reply is not None:
            await self._run_webhook_reply(*reply)
        return delivery

    async def _webhook_reply(self, resp: aiohttp.ClientResponse) -> tuple[str, _Params] | None:
        """A method call in the webhook's answer, as Telegram executes it (results are lost)."""
        ctype = resp.content_type
        params: _Params | None = None
        if ctype == "application/json":
            with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
                data = await resp.json(content_type=None)
                if isinstance(data, dict):
                    params = _Params(data, {})
        elif ctype == "multipart/form-data":
            params = await _read_multipart(aiohttp.MultipartReader(resp.headers, resp.content))
        elif ctype == "application/x-www-form-urlencoded":
            params = _Params(dict(parse_qsl(await resp.text())), {})
        else:
            await resp.read()
        if params is None:
            return None
        method = str(params.values.pop("method", "") or "").lower()
        if (
            not method
            or method.startswith("get")
            or method
            in (
                "setwebhook",
                "deletewebhook",
                "close",
                "logout",
            )
        ):
            return None
        return method, params

    async def _run_webhook_reply(self, method: str, params: _Params) -> None:
        try:
            status, body = await self._call(method, params)
        except ApiError as exc:
            status, body = exc.code, exc.body()
        self.requests.append(
            ApiCall(method, params.snapshot(), status, body.get("description"), via="webhook")
        )
        self._notify()
