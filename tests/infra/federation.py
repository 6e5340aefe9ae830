"""Synapse homeservers that federate with each other over loopback, for tests of a partner
company's homeserver.

Usage::

    cert = federation_certificate(tmp / "tls")
    a = FederatingSynapse(tmp / "a", [reg.path], certificate=cert)
    b = FederatingSynapse(tmp / "b", certificate=cert)
    with a, b:
        ...   # @staff:localhost:<a's port> invites @partner:localhost:<b's port>

What federation needs, and what each server gets here:

- A server name that leads to the server without DNS: ``localhost:<federation port>``. With an
  explicit port a homeserver connects to that host and port directly (no ``.well-known``, no
  SRV lookup), and ``localhost`` is in ``/etc/hosts``.
- A federation listener with TLS (federation is always HTTPS), here with the ``federation``
  and ``keys`` resources (each server fetches the other's signing keys from it, as
  ``trusted_key_servers`` is empty: no matrix.org).
- Certificates that verify: one self-signed certificate (naming ``localhost`` and 127.0.0.1)
  that every server presents and trusts (``federation_custom_ca_list``), so outbound
  federation checks certificates as in production instead of turning verification off.
- Loopback allowed as a federation destination (``ip_range_whitelist``; by default Synapse
  refuses private and loopback addresses), and no ``federation_domain_whitelist`` (the
  single-server tests set it empty: federation with nobody).

The client listener stays plain HTTP on its own port (``base_url``), as for
:class:`~tests.infra.synapse.SynapseServer`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .ports import free_port
from .synapse import SynapseServer, loopback_listener
from .tls import make_self_signed_cert

__all__ = [
    "FEDERATION_SETTINGS",
    "FederatingSynapse",
    "federation_certificate",
    "federation_listener",
]

FEDERATION_SETTINGS: dict[str, Any] = {
    "federation_domain_whitelist": None,
    "ip_range_whitelist": ["127.0.0.0/8", "::1/128"],
    "federation_verify_certificates": True,
    "trusted_key_servers": [],
    "allow_public_rooms_over_federation": False,
}
"""Federation between loopback homeservers that trust each other's certificate: the settings
of :class:`FederatingSynapse` besides its listener and certificate."""


def federation_certificate(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The certificate and key every federating test server presents and trusts."""
    return make_self_signed_cert(directory, "localhost", name="federation")


def federation_listener(port: int) -> dict[str, Any]:
    """A TLS listener on the loopback interface for server-server traffic."""
    return {
        **loopback_listener(port),
        "tls": True,
        "resources": [{"names": ["federation", "keys"], "compress": False}],
    }


class FederatingSynapse(SynapseServer):
    """A :class:`SynapseServer` named ``localhost:<federation_port>`` that federates over a TLS
    listener on that port.

    :param certificate: ``(cert, key)`` it presents; see :func:`federation_certificate`.
    :param trusted: certificates it accepts from other servers (default: its own, which is
        enough when every server presents the same one).
    :param federation_port: the federation listener's port; free one if None.

    Other arguments as for :class:`SynapseServer` (``extra_config`` still wins over
    everything generated).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        appservice_registration_files: Sequence[str | os.PathLike[str]] = (),
        *,
        certificate: tuple[Path, Path],
        trusted: Sequence[Path] = (),
        federation_port: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.federation_port = federation_port or free_port()
        self.certificate = certificate
        self.trusted = list(trusted) or [certificate[0]]
        super().__init__(
            workdir, appservice_registration_files, f"localhost:{self.federation_port}", **kwargs
        )

    def homeserver_config(self) -> dict[str, Any]:
        config = super().homeserver_config()
        cert, key = self.certificate
        config.update(
            {
                **FEDERATION_SETTINGS,
                "listeners": [*config["listeners"], federation_listener(self.federation_port)],
                "tls_certificate_path": str(cert),
                "tls_private_key_path": str(key),
                "federation_custom_ca_list": [str(p) for p in self.trusted],
            }
        )
        config.update(self.extra_config)
        return config

    def __repr__(self) -> str:
        return super().__repr__().replace("<SynapseServer", "<FederatingSynapse", 1)
