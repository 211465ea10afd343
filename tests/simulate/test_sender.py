"""Signing bodies as sipgate does, and the checks on the target and the key file."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256

from exporter.simulate.sender import Sender, load_signing_key, sign_body


def test_signature_verifies_with_the_public_key(private_key: rsa.RSAPrivateKey) -> None:
    body = b"event=newCall&callId=1"
    signature = base64.b64decode(sign_body(private_key, body))
    private_key.public_key().verify(signature, body, PKCS1v15(), SHA256())


def test_signing_key_loads_from_pem(private_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "sign.pem"
    path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert load_signing_key(str(path)).private_numbers() == private_key.private_numbers()


def test_public_key_file_is_refused(private_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "public.pem"
    path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(ValueError, match="is not an unencrypted PEM private key"):
        load_signing_key(str(path))


@pytest.mark.parametrize("target", ["localhost:9850/webhook", "ftp://host/webhook", "http://"])
def test_invalid_target_is_refused(target: str) -> None:
    with pytest.raises(ValueError, match="invalid target"):
        Sender(target)
