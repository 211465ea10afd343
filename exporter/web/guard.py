"""Decide whether a webhook request may be processed: source, size, basic auth, signature."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from importlib import resources
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from exporter.errors import Rejected

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

SIGNATURE_HEADER: Final = "X-Sipgate-Signature"
REALM: Final = "sipgate-exporter"
DEFAULT_MAX_BODY_BYTES: Final = 16 * 1024
BUNDLED_KEY: Final = "sipgate-push-api-public-key.pem"
MIN_KEY_BITS: Final = 2048

SOURCE: Final = "source"
TOO_LARGE: Final = "too_large"
AUTH: Final = "auth"
SIGNATURE: Final = "signature"
REASONS: Final = (SOURCE, TOO_LARGE, AUTH, SIGNATURE)

_PADDING: Final = PKCS1v15()
_HASH: Final = SHA256()
_CHALLENGE: Final = (("WWW-Authenticate", f'Basic realm="{REALM}"'),)


def load_public_key(pem: bytes) -> RSAPublicKey:
    """An RSA public key from PEM; raise ValueError if it is anything else."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("not an RSA public key")
    if key.key_size < MIN_KEY_BITS:
        raise ValueError(f"RSA key of {key.key_size} bits is too short (at least {MIN_KEY_BITS})")
    return key


def read_key_file(path: str) -> bytes:
    """The bytes of a PEM key file (at most 1 MiB); raise ValueError naming the file."""
    try:
        with open(path, "rb") as file:
            return file.read(1024 * 1024)
    except OSError as error:
        raise ValueError(f"cannot read key file {path!r}: {error.strerror or error}") from None


def read_public_key(path: str) -> RSAPublicKey:
    """The RSA public key in the PEM file at `path`; raise ValueError naming the file."""
    pem = read_key_file(path)
    try:
        return load_public_key(pem)
    except ValueError as error:
        raise ValueError(f"key file {path!r}: {error}") from None


def sipgate_public_key() -> RSAPublicKey:
    """sipgate's push API key, shipped with this package."""
    return load_public_key(resources.files("exporter").joinpath(BUNDLED_KEY).read_bytes())


def basic_auth_token(user: str, password: str) -> bytes:
    """The base64 part of the `Authorization: Basic` header for these credentials."""
    return base64.b64encode(f"{user}:{password}".encode())


def parse_networks(text: str) -> tuple[Network, ...]:
    """Networks from comma-separated CIDRs or addresses, e.g. `217.116.118.254/32,10.0.0.0/8`."""
    networks = []
    for part in text.split(","):
        try:
            networks.append(ip_network(part.strip()))
        except ValueError as error:
            raise ValueError(f"invalid network {part.strip()!r} ({error})") from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """The IP address in `1.2.3.4`, `1.2.3.4:80`, `::1` or `[::1]:80`; None if there is none."""
    host = text.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        address = ip_address(host)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def within(address: Address, networks: tuple[Network, ...]) -> bool:
    """Whether `address` lies in one of `networks`."""
    return any(address in network for network in networks)


def client_address(
    remote_addr: str, forwarded_for: str | None, trusted_proxies: tuple[Network, ...]
) -> Address | None:
    """The client: REMOTE_ADDR, or behind trusted proxies the right-most untrusted hop.

    Hops left of the first untrusted one are whatever the client claimed, so they are never used.
    None when the address that counts cannot be parsed.
    """
    address = parse_address(remote_addr)
    if address is None or not forwarded_for or not within(address, trusted_proxies):
        return address
    for hop in reversed(forwarded_for.split(",")):
        address = parse_address(hop)
        if address is None or not within(address, trusted_proxies):
            return address
    return address


@dataclass(frozen=True, slots=True)
class Guard:
    """What a webhook request must satisfy; everything is prepared once, at startup.

    The defaults check nothing but the body size: `signature_key`, `basic_auth` (a
    `basic_auth_token`) and `allowed_networks` each turn one check on.
    """

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    signature_key: RSAPublicKey | None = None
    basic_auth: bytes | None = None
    allowed_networks: tuple[Network, ...] | None = None
    trusted_proxies: tuple[Network, ...] = ()

    def check_request(
        self,
        remote_addr: str,
        forwarded_for: str | None,
        content_length: int,
        authorization: str | None,
    ) -> None:
        """Refuse by source, declared size or credentials, before the body is read.

        `content_length` is -1 when unknown; the header values are WSGI (latin-1) strings.
        """
        if self.allowed_networks is not None:
            client = client_address(remote_addr, forwarded_for, self.trusted_proxies)
            if client is None or not within(client, self.allowed_networks):
                raise Rejected(403, SOURCE, f"source address {client or 'unknown'} not allowed")
        if content_length > self.max_body_bytes:
            raise self._too_large()
        if self.basic_auth is not None:
            _check_basic_auth(authorization, self.basic_auth)

    def check_body(self, body: bytes, signature: str | None) -> None:
        """Refuse a body over the size limit or without a valid sipgate signature."""
        if len(body) > self.max_body_bytes:
            raise self._too_large()
        if self.signature_key is None:
            return
        if not signature:
            raise Rejected(403, SIGNATURE, f"missing {SIGNATURE_HEADER} header")
        try:
            raw = base64.b64decode(signature.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise Rejected(403, SIGNATURE, f"{SIGNATURE_HEADER} is not base64") from None
        try:
            self.signature_key.verify(raw, body, _PADDING, _HASH)
        except InvalidSignature:
            raise Rejected(403, SIGNATURE, f"{SIGNATURE_HEADER} does not match the body") from None

    def _too_large(self) -> Rejected:
        return Rejected(413, TOO_LARGE, f"body exceeds the limit of {self.max_body_bytes} bytes")


def _check_basic_auth(authorization: str | None, expected: bytes) -> None:
    if not authorization:
        raise Rejected(401, AUTH, "missing basic auth credentials", _CHALLENGE)
    scheme, _, token = authorization.strip().partition(" ")
    given = token.strip().encode("latin-1", "replace")
    # compare_digest takes the same time wherever the bytes differ.
    if not hmac.compare_digest(given, expected) or scheme.lower() != "basic":
        raise Rejected(401, AUTH, "wrong basic auth credentials", _CHALLENGE)
