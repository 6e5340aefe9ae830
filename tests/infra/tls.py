"""Self-signed TLS certificates for the test servers (Dovecot, the SMTP capture)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from .ports import LOOPBACK

__all__ = ["CertificateError", "make_self_signed_cert"]


class CertificateError(RuntimeError):
    """No certificate could be made."""


def make_self_signed_cert(
    directory: str | os.PathLike[str],
    hostname: str = "localhost",
    *,
    name: str = "server",
) -> tuple[Path, Path]:
    """Write ``<name>.crt`` and ``<name>.key`` (PEM, EC P-256, valid 7 days) into ``directory``.

    The certificate names ``hostname``, ``localhost`` and ``127.0.0.1`` (subjectAltName), so a
    client that trusts it (``ssl.create_default_context(cafile=cert)``) can verify the server
    at 127.0.0.1.  Uses the ``cryptography`` package when importable, else the ``openssl`` CLI.
    Returns ``(cert_path, key_path)``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / f"{name}.crt", out / f"{name}.key"
    try:
        _cert_with_cryptography(cert_path, key_path, hostname)
    except ImportError:
        _cert_with_openssl(cert_path, key_path, hostname)
    key_path.chmod(0o600)
    return cert_path, key_path


def _cert_with_cryptography(cert_path: Path, key_path: Path, hostname: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [
        x509.DNSName(n) for n in dict.fromkeys([hostname, "localhost"])
    ]
    names.append(x509.IPAddress(ipaddress.ip_address(LOOPBACK)))
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _cert_with_openssl(cert_path: Path, key_path: Path, hostname: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateError(
            "cannot make a TLS certificate: neither the `cryptography` package nor the "
            "`openssl` command is available (apt-get install openssl)"
        )
    san = ",".join(f"DNS:{n}" for n in dict.fromkeys([hostname, "localhost"]))
    cmd = [
        openssl, "req", "-x509", "-nodes", "-days", "7",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", str(key_path), "-out", str(cert_path),
        "-subj", f"/CN={hostname}",
        "-addext", f"subjectAltName={san},IP:{LOOPBACK}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
        "-addext", "extendedKeyUsage=serverAuth",
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise CertificateError(f"openssl req failed ({res.returncode}): {res.stderr.strip()}")
