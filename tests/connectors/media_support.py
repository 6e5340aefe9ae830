"""Reading what a connector's ``download_attachment`` hands the core, whole, for assertions."""

from __future__ import annotations

from typing import Any

from bridge.events import RemoteAttachment
from bridge.media import MediaFile


async def downloaded(connector: Any, attachment: RemoteAttachment) -> tuple[bytes, str]:
    """The bytes and mimetype of ``attachment``, whether the connector spooled it into a
    ``MediaFile`` (closed here) or handed over bytes."""
    data, mimetype = await connector.download_attachment(attachment)
    if isinstance(data, MediaFile):
        with data:
            return await data.read(), mimetype
    return data, mimetype
