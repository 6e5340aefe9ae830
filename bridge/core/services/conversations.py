"""Conversations: list them, start one, link a room to a remote chat and unlink it."""

from __future__ import annotations

import time

from mautrix.types import Membership, MemberStateEventContent, UserID

from ...db import Portal
from ...events import RemoteChat, RemoteUser
from ...types import RemoteChatID, RemoteUserID
from .common import ServiceBase
from .errors import ServiceError


class ConversationServices(ServiceBase):
    async def conversations(self, actor: str, account: str | None) -> list[Portal]:
        """The portals ``actor`` may see (of ``account``, or of every account)."""
        if account is not None:
            self.check(actor, account)
            return await Portal.all(account)
        visible = self.config.visible_accounts(actor)
        return [p for p in await Portal.all(None) if p.account in visible]

    async def start_conversation(
        self, actor: str, account: str, chat: RemoteChatID, address: str
    ) -> tuple[Portal, bool]:
        """The portal of ``chat`` (created, started by the business, if it is new) with
        ``actor`` invited. Returns it and whether ``actor`` may see it."""
        self.check(actor, account)
        connector = self.connectors[account]
        user = RemoteUser(id=RemoteUserID(chat), displayname=address)
        ghost = await self.ghosts.ensure(account, user, connector.title)
        portal = await self.portals.get_or_create(
            account, RemoteChat(id=chat, name=address), user, ghost, by_business=True
        )
        assert portal.room_id
        invited = await self.portals.invite(portal.room_id, UserID(actor), account)
        return portal, invited

    async def start_by_address(
        self, actor: str, account: str, address: str
    ) -> tuple[Portal, bool]:
        """``start_conversation`` with the chat that reaches ``address`` (a phone number, a
        mail address): the ``start`` command and the provisioning API."""
        self.check(actor, account)
        connector = self.connectors[account]
        chat_for_address = getattr(connector, "chat_for_address", None)
        if chat_for_address is None:
            raise ServiceError(f"{connector.title} has no addresses to start a conversation with.")
        try:
            chat = RemoteChatID(chat_for_address(address))
        except ValueError as e:
            raise ServiceError(str(e)) from e
        return await self.start_conversation(actor, account, chat, address)

    async def notice(self, room_id: str, text: str, *, txn: str | None = None) -> str | None:
        return await self.notices.send(room_id, text, txn=txn)

    async def invite(self, room_id: str, user: str, account: str) -> bool:
        return await self.portals.invite(room_id, UserID(user), account)

    async def displayname(self, room_id: str, user: str) -> str:
        return await self.sender.displayname(room_id, user)

    async def link(self, actor: str, room_id: str, account: str, chat: str) -> str:
        self.check(actor, account, "admin")
        linked = await Portal.get_by_room(room_id)
        if linked is not None:
            raise ServiceError(f"This room is already linked to {linked.account} / {linked.chat}.")
        existing = await Portal.get(account, chat)
        if existing is not None and existing.room_id:
            raise ServiceError(
                f"{account} / {chat} is already bridged to {existing.room_id}; unlink it first."
            )
        # Linking brings the conversation to everyone in the room, as an invite would.
        try:
            members = await self.sender.members(room_id)
        except Exception as e:
            raise ServiceError(
                f"Not linked: the members of this room could not be listed: {e}"
            ) from e
        unseen = sorted(
            str(m.state_key)
            for m in members
            if isinstance(m.content, MemberStateEventContent)
            and m.content.membership in (Membership.JOIN, Membership.INVITE)
            and not self.is_own(m.state_key)
            and self.config.permission_level(m.state_key, account) == "none"
        )
        if unseen:
            raise ServiceError(
                f"Not linked: {', '.join(unseen)} may not see the conversations of {account};"
                " remove them from this room first."
            )
        if existing is None:
            now = int(time.time() * 1000)
            await Portal(
                account, chat, room_id, metadata={"linked": True}, created_at=now
            ).insert()
        else:
            existing.room_id = room_id
            existing.metadata["linked"] = True
            await existing.save()
        return f"Linked this room to {account} / {chat}."

    async def unlink(self, actor: str, portal: Portal) -> str:
        self.check(actor, portal.account, "admin")
        room_id = portal.room_id or ""
        # The portal alias would lead the next message of the chat back to this room.
        try:
            await self.sender.remove_alias(
                self.portals.alias_localpart(portal.account, portal.chat)
            )
        except Exception as e:
            raise ServiceError(
                f"Not unlinked: the room alias of the conversation could not be removed: {e}"
            ) from e
        await portal.delete()
        answer = (
            f"Unlinked this room from {portal.account} / {portal.chat}. Nothing is bridged here"
            " any more; the next message of that conversation opens a new room."
        )
        try:
            members = await self.sender.joined_members(room_id)
        except Exception as e:
            return f"{answer} (The customer's Matrix users could not be listed to leave: {e})"
        for user in members:
            if self.ghosts.is_ghost(user):
                try:
                    await self.sender.leave(room_id, as_user=user)
                except Exception as e:
                    answer += f" ({user} could not leave: {e})"
        return answer
