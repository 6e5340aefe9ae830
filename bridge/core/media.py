"""A staff member's file, downloaded from the homeserver's media repository in chunks."""

from __future__ import annotations

from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.types import ContentURI, SpecVersions

from ..media import MediaFile


async def download_to_file(
    intent: IntentAPI, url: ContentURI, mimetype: str, *, limit: int | None = None
) -> MediaFile:
    """The file at ``url`` as a ``MediaFile``, never held whole in memory (mautrix's
    ``download_media`` reads the whole body). Raises ``FileTooLarge`` past ``limit``."""
    authenticated = bool((await intent.versions()).supports(SpecVersions.V111))
    full_url = intent.api.get_download_url(url, authenticated=authenticated)
    query: dict[str, Any] = {"allow_redirect": "true"}
    headers: dict[str, str] = {}
    if authenticated:
        headers["Authorization"] = f"Bearer {intent.api.token}"
        if intent.api.as_user_id:
            query["user_id"] = intent.api.as_user_id
    async with intent.api.session.get(full_url, params=query, headers=headers) as resp:
        resp.raise_for_status()
        return await MediaFile.from_response(resp, limit=limit, mimetype=mimetype)
