"""Unit tests of the webhook guard: signature, basic auth, source addresses and body size."""

from __future__ import annotations

import base64
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from exporter.errors import Rejected
from exporter.web.guard import (
    Guard,
    basic_auth_token,
    client_address,
    load_public_key,
    parse_address,
    parse_networks,
    read_public_key,
    sipgate_public_key,
)

BODY = b"event=hangup&direction=in&callId=1&cause=normalClearing"
SIPGATE = parse_networks("217.116.118.254/32,212.9.46.32/32")
PROXIES = parse_networks("10.0.0.0/8,fd00::/8")


def sign(key: rsa.RSAPrivateKey, body: bytes) -> str:
    """The X-Sipgate-Signature header value for `body`, as sipgate makes it."""
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def signed(private_key: rsa.RSAPrivateKey) -> Guard:
    return Guard(signature_key=private_key.public_key())


def assert_rejected(error: pytest.ExceptionInfo[Rejected], status: int, reason: str) -> None:
    assert (error.value.status, error.value.reason) == (status, reason)
    assert "\n" not in str(error.value)


# Signature


def test_correct_signature_passes(signed: Guard, private_key: rsa.RSAPrivateKey) -> None:
    signed.check_body(BODY, sign(private_key, BODY))


def test_signature_of_another_body_is_refused(
    signed: Guard, private_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(Rejected) as error:
        signed.check_body(BODY + b"&x=1", sign(private_key, BODY))
    assert_rejected(error, 403, "signature")
    assert "does not match" in str(error.value)


def test_signature_made_with_another_key_is_refused(
    signed: Guard, other_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(Rejected) as error:
        signed.check_body(BODY, sign(other_key, BODY))
    assert_rejected(error, 403, "signature")


@pytest.mark.parametrize("header", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_missing_signature_is_refused(signed: Guard, header: str | None) -> None:
    with pytest.raises(Rejected) as error:
        signed.check_body(BODY, header)
    assert_rejected(error, 403, "signature")


@pytest.mark.parametrize("header", ["not base64!", "abc", "ü" * 8, "QUJD" * 200])
def test_garbage_signature_is_refused(signed: Guard, header: str) -> None:
    with pytest.raises(Rejected) as error:
        signed.check_body(BODY, header)
    assert_rejected(error, 403, "signature")
    assert header not in str(error.value)


def test_without_a_key_no_signature_is_needed() -> None:
    Guard().check_body(BODY, None)


def test_bundled_key_is_sipgates_4096_bit_rsa_key() -> None:
    key = sipgate_public_key()
    assert key.key_size == 4096
    shared = Path(__file__).parents[3] / "shared" / "sipgate" / "push-api-public-key.pem"
    if shared.exists():
        assert public_pem_of(key) == load_public_key(shared.read_bytes()).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def public_pem_of(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_key_file_is_read_and_checked(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(private_key))
    assert public_pem_of(read_public_key(str(path))) == public_pem(private_key)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a PEM public key"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
        ("private", "not a PEM public key"),
        ("ec", "not an RSA public key"),
        ("short", "too short"),
    ],
)
def test_bad_key_files_give_one_clear_line(
    tmp_path: Path, private_key: rsa.RSAPrivateKey, content: bytes | str, message: str
) -> None:
    if content == "private":
        content = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    elif content == "ec":
        content = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    elif content == "short":
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 -- must be refused
        content = public_pem(small)
    assert isinstance(content, bytes)
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        read_public_key(str(path))
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)
    assert "PRIVATE" not in str(error.value)


def test_missing_key_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read key file .*nope\.pem"):
        read_public_key(str(tmp_path / "nope.pem"))


# Basic auth

AUTHED = Guard(basic_auth=basic_auth_token("sipgate", "s3cr3t:pw"))


def check_auth(guard: Guard, authorization: str | None) -> None:
    guard.check_request("127.0.0.1", None, 10, authorization)


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.mark.parametrize(
    "header",
    [
        basic("sipgate:s3cr3t:pw"),
        "basic " + basic("sipgate:s3cr3t:pw")[6:],
        " " + basic("sipgate:s3cr3t:pw"),
    ],
    ids=["standard", "lower-case scheme", "leading space"],
)
def test_right_credentials_pass(header: str) -> None:
    check_auth(AUTHED, header)


@pytest.mark.parametrize(
    "header",
    [
        basic("other:s3cr3t:pw"),
        basic("sipgate:wrong"),
        basic("sipgate:s3cr3t:pw2"),
        basic("sipgate"),
        "Bearer " + basic("sipgate:s3cr3t:pw")[6:],
        "Basic",
        "Basic !!!",
        "Basic ÿÿÿ",
        basic("sipgate:s3cr3t:pw")[6:],
    ],
    ids=[
        "wrong user",
        "wrong password",
        "longer password",
        "no password",
        "other scheme",
        "no token",
        "not base64",
        "latin-1 bytes",
        "no scheme",
    ],
)
def test_wrong_or_malformed_credentials_get_401(header: str) -> None:
    with pytest.raises(Rejected) as error:
        check_auth(AUTHED, header)
    assert_rejected(error, 401, "auth")
    assert error.value.headers == (("WWW-Authenticate", 'Basic realm="sipgate-exporter"'),)
    assert "s3cr3t" not in str(error.value)


@pytest.mark.parametrize("header", [None, ""])
def test_missing_credentials_get_401(header: str | None) -> None:
    with pytest.raises(Rejected) as error:
        check_auth(AUTHED, header)
    assert_rejected(error, 401, "auth")
    assert error.value.headers


def test_utf8_credentials_match_what_a_client_sends() -> None:
    guard = Guard(basic_auth=basic_auth_token("jürgen", "pässword"))
    # WSGI hands headers over as latin-1 strings of the raw bytes.
    raw = "Basic " + base64.b64encode("jürgen:pässword".encode()).decode()
    check_auth(guard, raw)


def test_without_basic_auth_no_header_is_needed() -> None:
    check_auth(Guard(), None)


# Source addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4 ", "1.2.3.4"),
        ("1.2.3.4:5678", "1.2.3.4"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:217.116.118.254", "217.116.118.254"),
        ("unknown", None),
        ("", None),
        ("1.2.3.999", None),
    ],
)
def test_parse_address(text: str, expected: str | None) -> None:
    assert parse_address(text) == (ip_address(expected) if expected else None)


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("217.116.118.254", None, "217.116.118.254"),
        # Not from a trusted proxy: X-Forwarded-For is the client's claim and ignored.
        ("203.0.113.9", "217.116.118.254", "203.0.113.9"),
        # From a trusted proxy: the right-most hop that is not a trusted proxy.
        ("10.0.0.2", "217.116.118.254", "217.116.118.254"),
        ("10.0.0.2", "217.116.118.254, 10.1.1.1", "217.116.118.254"),
        # A client that puts sipgate's address in front is seen as itself.
        ("10.0.0.2", "217.116.118.254, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.2", "217.116.118.254,203.0.113.9:4711", "203.0.113.9"),
        # All hops trusted: the left-most.
        ("10.0.0.2", "10.9.9.9, 10.1.1.1", "10.9.9.9"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "garbage", None),
        ("fd00::2", "[2001:db8::7]:1234", "2001:db8::7"),
        ("::ffff:10.0.0.2", "217.116.118.254", "217.116.118.254"),
        ("not an address", None, None),
    ],
)
def test_client_address(remote: str, forwarded: str | None, expected: str | None) -> None:
    found = client_address(remote, forwarded, PROXIES)
    assert found == (ip_address(expected) if expected else None)


ALLOWED = Guard(allowed_networks=SIPGATE, trusted_proxies=PROXIES)


@pytest.mark.parametrize(
    ("remote", "forwarded"),
    [
        ("217.116.118.254", None),
        ("212.9.46.32", "1.2.3.4"),
        ("10.0.0.2", "212.9.46.32"),
        ("fd00::2", "198.51.100.1, 217.116.118.254"),
    ],
)
def test_allowed_sources_pass(remote: str, forwarded: str | None) -> None:
    ALLOWED.check_request(remote, forwarded, 10, None)


@pytest.mark.parametrize(
    ("remote", "forwarded"),
    [
        ("203.0.113.9", None),
        ("203.0.113.9", "217.116.118.254"),  # spoofed X-Forwarded-For from an untrusted client
        ("10.0.0.2", "217.116.118.254, 203.0.113.9"),
        ("10.0.0.2", None),  # the proxy itself
        ("10.0.0.2", "not-an-ip"),
        ("2001:db8::1", None),
    ],
)
def test_other_sources_get_403(remote: str, forwarded: str | None) -> None:
    with pytest.raises(Rejected) as error:
        ALLOWED.check_request(remote, forwarded, 10, None)
    assert_rejected(error, 403, "source")


def test_ipv6_networks_are_allowed_too() -> None:
    guard = Guard(allowed_networks=parse_networks("2001:db8::/32"))
    guard.check_request("2001:db8::1", None, 10, None)
    with pytest.raises(Rejected):
        guard.check_request("2001:db9::1", None, 10, None)


@pytest.mark.parametrize("text", ["10.0.0.1/8", "300.1.1.1", "", "10.0.0.0/8,", "fd00::/129"])
def test_bad_networks_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="invalid network"):
        parse_networks(text)


# Size and order


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    guard = Guard(max_body_bytes=100)
    guard.check_request("127.0.0.1", None, 100, None)
    guard.check_request("127.0.0.1", None, -1, None)
    with pytest.raises(Rejected) as error:
        guard.check_request("127.0.0.1", None, 101, None)
    assert_rejected(error, 413, "too_large")


def test_body_read_over_the_limit_is_refused() -> None:
    guard = Guard(max_body_bytes=100)
    guard.check_body(b"x" * 100, None)
    with pytest.raises(Rejected) as error:
        guard.check_body(b"x" * 101, None)
    assert_rejected(error, 413, "too_large")


def test_checks_run_source_then_size_then_auth(
    private_key: rsa.RSAPrivateKey,
) -> None:
    guard = Guard(
        max_body_bytes=10,
        signature_key=private_key.public_key(),
        basic_auth=basic_auth_token("u", "p"),
        allowed_networks=SIPGATE,
    )
    reasons = []
    for remote, length in (("203.0.113.9", 11), ("217.116.118.254", 11), ("217.116.118.254", 5)):
        with pytest.raises(Rejected) as error:
            guard.check_request(remote, None, length, None)
        reasons.append(error.value.reason)
    assert reasons == ["source", "too_large", "auth"]
    guard.check_request("217.116.118.254", None, 5, basic("u:p"))
    with pytest.raises(Rejected, match="missing X-Sipgate-Signature"):
        guard.check_body(b"event=x", None)
