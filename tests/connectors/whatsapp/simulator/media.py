"""Media: upload, the media node (URL, delete) and the short-lived download URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

from aiohttp import web

from .. import payloads as wa
from ..payloads import PRODUCT, SUPPORTED_MIME, ApiError, Json, base_mime, kind_for_mime
from ..payloads import no_object_error as _no_object
from ..payloads import param_error as _param
from .http import HttpEdge
from .records import StoredMedia


class MediaEndpoint(HttpEdge):
    """Media upload, the media node (URL, delete) and the signed download URL."""

    async def _upload(self, request: web.Request) -> Json:
        self._check_phone(request)
        if not request.content_type.startswith("multipart/"):
            raise _param("The request must be multipart/form-data.")
        form = await request.post()
        if form.get("messaging_product") != PRODUCT:
            raise _param("The parameter messaging_product is required and must be whatsapp.")
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise _param("The parameter file is required.")
        with upload.file:
            data = upload.file.read()
        mime = form.get("type")
        if not isinstance(mime, str) or not mime:
            raise _param("The parameter type is required.")
        kind = kind_for_mime(mime)
        if kind is None:
            allowed = ", ".join(sorted(set().union(*SUPPORTED_MIME.values())))
            raise ApiError(
                131053,
                details=f"Param file must be a file with one of the following types: {allowed}. "
                f"Received file of type '{base_mime(mime)}'.",
            )
        limit = self.limits.media_bytes(kind, data)
        if not data or len(data) > limit:
            raise ApiError(
                131053,
                details=f"{kind} file size {len(data)} bytes is outside the allowed range "
                f"(1 to {limit} bytes) for {base_mime(mime)}.",
            )
        media = StoredMedia(
            wa.new_media_id(), data, mime, kind, self.phone_number_id, "upload",
            upload.filename or None, at=self.clock.now(),
        )  # fmt: skip
        self._media[media.id] = media
        self.uploads.append(media)
        self._notify()
        return {"id": media.id}

    def _url_hash(self, media_id: str, ext: int) -> str:
        digest = hmac.new(self._url_key, f"{media_id}:{ext}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    async def _get_node(self, request: web.Request) -> Json:
        node = request.match_info["node"]
        if node == self.phone_number_id:
            return {
                "verified_name": self.verified_name,
                "code_verification_status": "VERIFIED",
                "display_phone_number": self.display_phone_number,
                "quality_rating": "GREEN",
                "platform_type": "CLOUD_API",
                "throughput": {"level": "STANDARD"},
                "id": self.phone_number_id,
            }
        media = self._media.get(node)
        if media is None or media.deleted:
            raise _no_object(node, "get")
        owner = request.query.get("phone_number_id")
        if owner is not None and owner != media.phone_number_id:
            raise _param("Param phone_number_id does not match the media's phone number.")
        ext = int(self.clock.now() + self.limits.media_url_ttl)
        query = urlencode({"mid": media.id, "ext": ext, "hash": self._url_hash(media.id, ext)})
        media.url_requests += 1
        self._notify()
        return {
            "messaging_product": PRODUCT,
            "url": f"{self.base_url}/whatsapp_business/attachments/?{query}",
            "mime_type": media.mime_type,
            "sha256": media.sha256_hex,
            "file_size": len(media.data),
            "id": media.id,
        }

    async def _delete_node(self, request: web.Request) -> Json:
        node = request.match_info["node"]
        media = self._media.get(node)
        if media is None or media.deleted:
            raise _no_object(node, "delete")
        owner = request.query.get("phone_number_id")
        if owner is not None and owner != media.phone_number_id:
            raise _param("Param phone_number_id does not match the media's phone number.")
        media.deleted = True
        self._notify()
        return {"success": True}

    async def _download(self, request: web.Request) -> web.Response:
        """The media URL: bytes only with the bearer token and only until ``ext``; otherwise 401
        (no/wrong token) or 404 (expired, unknown or tampered URL, deleted media)."""
        media_id = request.query.get("mid", "")
        try:
            self._authorize(request)
        except ApiError as exc:
            self.downloads.append((media_id, exc.status))
            self._notify()
            return web.json_response(exc.body, status=exc.status)
        media = self._media.get(media_id)
        try:
            ext = int(request.query.get("ext", ""))
        except ValueError:
            ext = 0
        valid = hmac.compare_digest(request.query.get("hash", ""), self._url_hash(media_id, ext))
        if media is None or media.deleted or not valid or self.clock.now() > ext:
            self.downloads.append((media_id, 404))
            self._notify()
            return web.Response(status=404, text="Not Found")
        self.downloads.append((media_id, 200))
        self._notify()
        return web.Response(body=media.data, headers={"Content-Type": media.mime_type})
