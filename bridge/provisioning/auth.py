"""Who calls the provisioning API. Every request names the Matrix user it acts for in the
``user_id`` query parameter and proves it one of two ways:

- ``Authorization: Bearer <shared secret>``: an in-house system, trusted to act for any user
  it names. The secret is compared in constant time (``hmac.compare_digest``).
- ``Authorization: Bearer openid:<token>``: the user's own OpenID token (``POST
  /_matrix/client/v3/user/{userId}/openid/request_token``). The bridge asks the homeserver of
  the claimed user (its own at ``homeserver.address``, another at ``https://<server name>``)
  ``GET /_matrix/federation/v1/openid/userinfo`` and accepts only a ``sub`` that is exactly
  the claimed user, on exactly the server asked: a homeserver vouches for its own users only
  (a server that answers with another server's user is the impersonation of CVE-2023-38691).
  A verified token is trusted for ``openid_cache`` seconds (a bounded cache). Only users the
  permissions grant something are asked about: a caller cannot make the bridge send requests
  to servers (or internal addresses) the configuration does not name, and an answer is read
  up to ``MAX_ANSWER`` bytes.

What the user may then do is decided by the services layer from their permission level, as
for their commands. A missing or wrong credential is answered 401, never anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable

import aiohttp
from aiohttp import web
from yarl import URL

from ..connectors.http import read_limited
from ..seams_api import ApiError
from .config import ProvisioningConfig

log = logging.getLogger("bridge.provisioning")

OPENID_PREFIX = "openid:"
USERINFO = "_matrix/federation/v1/openid/userinfo"
CACHE_SIZE = 1024
"""Verified tokens kept at most; the oldest go first."""
TIMEOUT = aiohttp.ClientTimeout(total=10)
MXID = re.compile(
    r"^@[a-z0-9._=/+-]+:(?P<server>([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?)$"
)
"""A user ID whose server name is a host name or IP literal with an optional port."""
MAX_USER_ID = 255
MAX_ANSWER = 65536
"""Bytes of a userinfo answer read at most (it is a one-key JSON object)."""


def server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1]


class Authenticator:
    def __init__(
        self,
        config: ProvisioningConfig,
        hs_domain: str,
        hs_address: URL,
        http: Callable[[], aiohttp.ClientSession],
        may_use: Callable[[str], bool] = lambda user: True,
    ) -> None:
        self._may_use = may_use
        self._secret = config.shared_secret.encode()
        self._ttl = config.openid_cache
        self._hs_domain = hs_domain
        self._hs_address = hs_address
        self._http = http
        self._verified: OrderedDict[bytes, float] = OrderedDict()
        """sha256(user \\0 token) -> until when it is trusted (monotonic seconds)."""

    async def actor(self, request: web.Request) -> str:
        """The Matrix user ``request`` acts for; ``ApiError(401)`` unless it is proven."""
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not token:
            raise ApiError(401, "Authorization: Bearer <token> is missing", "M_MISSING_TOKEN")
        user_id = request.query.get("user_id", "")
        if not user_id or len(user_id) > MAX_USER_ID or not MXID.match(user_id):
            raise ApiError(401, "user_id must name the Matrix user to act for", "M_MISSING_PARAM")
        if token.startswith(OPENID_PREFIX):
            if not self._may_use(user_id):
                # Not asked of the user's server: nothing would be allowed anyway.
                raise ApiError(401, f"{user_id} may not use the bridge", "M_UNKNOWN_TOKEN")
            await self.verify_openid(user_id, token[len(OPENID_PREFIX) :])
        elif not hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self._secret):
            raise ApiError(401, "Unknown token", "M_UNKNOWN_TOKEN")
        return user_id

    def homeserver(self, server: str) -> URL:
        """Where the homeserver of ``server`` answers: the bridge's own at its configured
        address, any other at ``https://<server name>`` (delegation is not followed)."""
        if server == self._hs_domain:
            return self._hs_address
        return URL(f"https://{server}")

    async def verify_openid(self, user_id: str, token: str) -> None:
        """Return if ``token`` proves ``user_id`` (asking its homeserver unless cached), raise
        ``ApiError(401)`` otherwise."""
        key = hashlib.sha256(f"{user_id}\x00{token}".encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()
        until = self._verified.get(key)
        if until is not None and until > now:
            return
        self._verified.pop(key, None)
        server = server_of(user_id)
        url = self.homeserver(server).with_path("/" + USERINFO).with_query(access_token=token)
        try:
            async with self._http().get(url, timeout=TIMEOUT) as response:
                status = response.status
                raw, more = b"", False
                if status == 200:
                    raw, more = await read_limited(response.content, MAX_ANSWER)
            if more:
                raise ValueError(f"an answer of over {MAX_ANSWER} bytes")
            body = json.loads(raw) if raw else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            log.info("Could not verify an OpenID token with %s: %s", server, e)
            raise ApiError(
                401, f"Could not verify the token with {server}", "M_UNKNOWN_TOKEN"
            ) from e
        sub = body.get("sub") if isinstance(body, dict) else None
        if not isinstance(sub, str):
            raise ApiError(401, f"{server} did not accept the token", "M_UNKNOWN_TOKEN")
        # Both checks: the answer is about a user of the server asked, and that user is the
        # one claimed.
        if ":" not in sub or server_of(sub) != server:
            log.warning("%s vouched for a user of another server; refused", server)
            raise ApiError(401, f"{server} vouched for another server's user", "M_UNKNOWN_TOKEN")
        if sub != user_id:
            raise ApiError(401, "The token belongs to another user", "M_UNKNOWN_TOKEN")
        if self._ttl > 0:
            self._verified[key] = now + self._ttl
            while len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
