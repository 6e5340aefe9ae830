"""The email connector: one company mailbox (IMAP or LMTP in, SMTP out) as conversations."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import html as html_lib
from collections.abc import Mapping
from typing import Any

from ...connector import (
    BridgeHost,
    Capabilities,
    NetworkConnector,
    PermanentDeliveryError,
    StateKind,
    TemporaryDeliveryError,
)
from ...events import (
    MatrixMessage,
    RemoteAttachment,
    RemoteDeliveryFailure,
    RemoteEvent,
    SentMessage,
)
from ...tasks import cancel_and_wait
from ...types import AccountID, MessageID, RemoteChatID
from .config import EmailConfig, parse_config
from .imap import IMAPError, open_mailbox
from .lmtp import LmtpListener
from .parse import ParsedMail, attachment_bytes, parse_mail, to_remote_event
from .smtp import build_reply, send

PART_PREFIX = "imap:"
INLINE_PREFIX = "inline:"
"""Parts of mail pushed over LMTP travel in the event itself: no mailbox keeps that mail."""
CONNECT_TIMEOUT = 20.0

EMAIL_CAPABILITIES = Capabilities(
    html=True,
    max_text_length=None,
    max_file_size={"*": 25 * 1024 * 1024},
    delivery_deadline=24 * 3600.0,
)


class EmailConnector(NetworkConnector):
    """Each mail thread of a contact (or each contact) is a portal; staff replies go out as
    properly threaded mail. Mail has no edits, deletions or reactions: the core says so."""

    channel = "email"
    title = "Email"
    capabilities = EMAIL_CAPABILITIES
    config: EmailConfig

    def __init__(self, account_id: AccountID, config: EmailConfig, host: BridgeHost) -> None:
        super().__init__(account_id, config, host)
        self.capabilities = dataclasses.replace(
            EMAIL_CAPABILITIES,
            max_file_size={"*": config.max_size},
            delivery_deadline=config.delivery_deadline,
        )
        self.title = config.title
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.lmtp: LmtpListener | None = None
        self._logged_in = False

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], key: str) -> EmailConfig:
        return parse_config(raw, key)

    async def start(self) -> None:
        self._connected = asyncio.Event()
        if self.config.lmtp is not None:
            self.lmtp = LmtpListener(self.config.lmtp, self._accept_pushed)
            try:
                await self.lmtp.start()
            except OSError as e:
                self.lmtp = None
                self.set_state(StateKind.DISCONNECTED, f"cannot listen for LMTP: {e}")
                self.host.log.error("Cannot listen for LMTP: %s", e)
        if self.config.imap is None:
            if self.lmtp is not None:
                self.set_state(StateKind.CONNECTED, f"LMTP on port {self.lmtp.port}")
            return
        self._task = asyncio.create_task(self._run(), name=f"email:{self.account_id}")
        # Report the mailbox state when start() returns; an unreachable server is not fatal:
        # the loop keeps trying and the state says why.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT)

    async def stop(self) -> None:
        if self.lmtp is not None:
            await self.lmtp.stop()
            self.lmtp = None
        await cancel_and_wait([self._task])
        self._task = None
        self.set_state(StateKind.STOPPED)

    # ------------------------------------------------------------------ mail -> Matrix

    async def _run(self) -> None:
        delay = 1.0
        while True:
            self._logged_in = False
            try:
                await self._read_mailbox()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if self._logged_in:
                    delay = 1.0  # the session worked for a while: this is a new outage
                self.set_state(StateKind.DISCONNECTED, str(e) or type(e).__name__)
                self._connected.set()  # start() need not wait any longer: the state says why
                self.host.log.warning("Mailbox not reachable (%s); retrying in %.0fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)

    async def _read_mailbox(self) -> None:
        assert self.config.imap is not None
        async with open_mailbox(self.config.imap, self.config.folder) as box:
            self._logged_in = True
            self.set_state(StateKind.CONNECTED, f"{self.config.imap.user}, {self.config.folder}")
            self._connected.set()
            data = await self.host.load_data()
            if data.get("uidvalidity") != box.uidvalidity:
                # The server renumbered the folder: read it again from the start; mails
                # bridged before are recognised by their Message-ID and not repeated.
                if data.get("uidvalidity") is not None:
                    self.host.log.warning("UIDVALIDITY changed: rereading %s", self.config.folder)
                data = {**data, "uidvalidity": box.uidvalidity, "last_uid": 0}
                await self.host.save_data(data)
            while True:
                for uid in await box.uids_after(int(data.get("last_uid", 0))):
                    raw = await box.fetch(uid)
                    if raw is not None:
                        await self._handle_mail(raw, f"{PART_PREFIX}{box.uidvalidity}:{uid}:")
                    data = {**data, "last_uid": uid}
                    await self.host.save_data(data)
                await box.wait(self.config.idle_timeout, self.config.poll_interval)

    async def _accept_pushed(self, raw: bytes) -> None:
        """A mail the MTA pushed over LMTP; returns once the core committed it."""
        await self._handle_mail(raw, None)

    async def _handle_mail(self, raw: bytes, imap_prefix: str | None) -> None:
        """Bridge one mail. Its parts are fetched again from IMAP later (``imap_prefix``, e.g.
        ``imap:<uidvalidity>:<uid>:``) or, without a mailbox, carried in the event."""
        try:
            mail = parse_mail(raw)
        except Exception:  # parse_mail is meant never to raise; a mailbox loop must not die
            self.host.log.exception("Could not read mail %s", imap_prefix or "pushed over LMTP")
            return
        event = await self._event_for(mail)
        if event is None:
            return
        if not isinstance(event, RemoteDeliveryFailure):
            attachments = tuple(
                self._part_source(a, raw, imap_prefix) for a in getattr(event, "attachments", ())
            )
            event = dataclasses.replace(event, attachments=attachments)  # type: ignore[call-arg]
        await self.host.handle_remote_event(event)

    async def _event_for(self, mail: ParsedMail) -> RemoteEvent | None:
        contact = mail.from_address
        if mail.is_bounce:
            original = mail.bounce_original_message_id
            chat = await self.host.find_chat([original]) if original else None
            if chat is None:
                self.host.log.info("Bounce for an unknown message %s", original)
                return None
            return to_remote_event(mail, chat_id=chat, chat_name=contact)
        if not contact:
            self.host.log.info("Ignoring mail %s without a sender", mail.message_id)
            return None
        if self.config.threading == "contact":
            chat = RemoteChatID(contact)
        else:
            found = await self.host.find_chat([*mail.references, *mail.in_reply_to])
            # Threads are scoped to the contact: a reply from someone else starts their own.
            if found is not None and found.split("/", 1)[0] == contact:
                chat = found
            else:
                chat = RemoteChatID(f"{contact}/{mail.message_id}")
        event = to_remote_event(mail, chat_id=chat, chat_name=mail.from_name or contact)
        # The subject is the room's topic.
        return dataclasses.replace(event, chat=dataclasses.replace(event.chat, topic=mail.subject))

    @staticmethod
    def _part_source(
        attachment: RemoteAttachment, raw: bytes, imap_prefix: str | None
    ) -> RemoteAttachment:
        index = int(attachment.extra.get("index", 0))
        if imap_prefix is not None:
            return dataclasses.replace(attachment, url=f"{imap_prefix}{index}")
        data, _, _ = attachment_bytes(raw, index)
        extra = {**attachment.extra, "data": base64.b64encode(data).decode()}
        return dataclasses.replace(attachment, url=f"{INLINE_PREFIX}{index}", extra=extra)

    async def download_attachment(self, attachment: RemoteAttachment) -> tuple[bytes, str]:
        if attachment.url.startswith(INLINE_PREFIX):
            try:
                data = base64.b64decode(attachment.extra["data"], validate=True)
            except (KeyError, TypeError, ValueError) as e:
                raise PermanentDeliveryError("the pushed mail part is missing") from e
            return data, attachment.mimetype or "application/octet-stream"
        if self.config.imap is None or not attachment.url.startswith(PART_PREFIX):
            raise PermanentDeliveryError(f"not a stored mail part: {attachment.url}")
        uidvalidity, uid, index = (int(p) for p in attachment.url[len(PART_PREFIX) :].split(":"))
        try:
            async with open_mailbox(self.config.imap, self.config.folder) as box:
                if box.uidvalidity != uidvalidity:
                    raise PermanentDeliveryError("the mail is no longer in the mailbox")
                raw = await box.fetch(uid)
        except (IMAPError, OSError, TimeoutError) as e:
            raise TemporaryDeliveryError(f"mailbox unreachable: {e}") from e
        if raw is None:
            raise PermanentDeliveryError("the mail is no longer in the mailbox")
        data, mimetype, _ = attachment_bytes(raw, index)
        return data, mimetype

    # ------------------------------------------------------------------ Matrix -> mail

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        meta = await self.host.portal_metadata(msg.portal.chat)
        # The staff member's name is in From:, so the body goes without the prefix.
        text = msg.text[len(msg.prefix) :] if msg.text.startswith(msg.prefix) else msg.text
        html = msg.html
        if html and msg.prefix:
            escaped = html_lib.escape(msg.prefix)
            html = html[len(escaped) :] if html.startswith(escaped) else html
        attachment = None
        if msg.media is not None:
            if msg.media.size and msg.media.size > self.config.max_size:
                raise PermanentDeliveryError(f"{msg.media.filename} is over the mail size limit")
            attachment = (await msg.media.download(), msg.media.mimetype, msg.media.filename)
        mail = build_reply(
            self.config, sender_name=msg.sender_name, meta=meta, text=text, html=html,
            attachment=attachment, source_id=msg.event_id,
        )  # fmt: skip
        await send(self.config, mail)
        return SentMessage(message_id=MessageID(str(mail["Message-ID"]).strip("<>")))

    async def send_reply(self, msg: MatrixMessage) -> SentMessage:
        return await self.send_message(msg)

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        return await self.send_message(msg)
