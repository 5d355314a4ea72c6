"""Encrypt what Temporal stores: every payload (workflow and activity inputs and results, Update arguments,
query results, failure details) is sealed with AES-256-GCM before it leaves our processes.

Each encrypted payload says which key sealed it (``encryption-key-id`` in its metadata, encoding
``binary/encrypted``, as Temporal's encryption sample), so keys can be rotated: the first key of
``SGFLOW_PAYLOAD_KEYS`` encrypts, all of them decrypt. With the setting unset, one key is generated once into
``<data dir>/payload_keys`` (readable by this user only). A payload that is not encrypted (written before
encryption was turned on) is passed through unchanged, so older histories still replay.

Search attributes are not payloads Temporal lets a codec touch: they stay in clear and never hold personal data.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from safeguarding.settings import Settings, SettingsError, make_private_dir

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_FILE = "payload_keys"
SETTING = "SGFLOW_PAYLOAD_KEYS"
_KEY_ID_SHAPE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NONCE = 12


class PayloadKeyError(SettingsError):
    """The payload keys setting (or file) cannot be used: one line naming the variable and what is wrong."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload cannot be opened: unknown key id, or the ciphertext was changed."""


@dataclass(frozen=True)
class PayloadKeys:
    """Key id -> 32-byte key; ``current`` is the id that encrypts."""

    current: str
    keys: dict[str, bytes]


def parse_keys(text: str, source: str = SETTING) -> PayloadKeys:
    """``id:base64key[,id:base64key...]``; every fault is one PayloadKeyError naming ``source``."""
    keys: dict[str, bytes] = {}
    entries = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    if not entries:
        raise PayloadKeyError(f"{source} is empty; expected id:base64key[,id:base64key...]")
    for position, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep:
            raise PayloadKeyError(f"{source}: entry {position} has no ‘:’; expected id:base64key")
        if not _KEY_ID_SHAPE.match(key_id):
            raise PayloadKeyError(f"{source}: entry {position}: key id {key_id!r} must be 1-64 letters, digits, "
                                  "‘.’, ‘_’ or ‘-’")
        if key_id in keys:
            raise PayloadKeyError(f"{source}: key id ‘{key_id}’ appears twice")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise PayloadKeyError(f"{source}: key ‘{key_id}’ is not valid base64") from None
        if len(key) != 32:
            raise PayloadKeyError(f"{source}: key ‘{key_id}’ is {len(key)} bytes; AES-256 needs 32 "
                                  "(generate one with: python -c \"import base64,os; "
                                  "print(base64.b64encode(os.urandom(32)).decode())\")")
        keys[key_id] = key
    return PayloadKeys(current=entries[0].partition(":")[0].strip(), keys=keys)


def new_key_entry(key_id: str = "k1") -> str:
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def _generated_keys(data_dir: Path) -> PayloadKeys:
    """The keys in ``<data dir>/payload_keys``, created once (0600, atomically: two processes starting at
    the same moment end up with the same key, never two)."""
    path = data_dir / KEY_FILE
    if not path.exists():
        make_private_dir(data_dir)
        temp = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(new_key_entry() + "\n")
            with contextlib.suppress(FileExistsError):  # another process got there first: theirs is used
                os.link(temp, path)
        finally:
            temp.unlink(missing_ok=True)
    return parse_keys(path.read_text(), source=str(path))


def load_keys(settings: Settings, *, create: bool = True) -> PayloadKeys:
    """The configured keys, else the data folder's (made there when ``create``)."""
    if settings.payload_keys is not None:
        return parse_keys(settings.payload_keys)
    if not create and not (settings.data_dir / KEY_FILE).exists():
        raise PayloadKeyError(f"{SETTING} is not set and {settings.data_dir / KEY_FILE} does not exist; set "
                              f"{SETTING} to the keys the worker and web app use")
    return _generated_keys(settings.data_dir)


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each whole serialized payload; the key id travels in clear in the metadata."""

    def __init__(self, keys: PayloadKeys):
        self._current = keys.current
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.encrypt(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.decrypt(payloads)

    def encrypt(self, payloads: Iterable[Payload]) -> list[Payload]:
        cipher, out = self._ciphers[self._current], []
        for payload in payloads:
            nonce = secrets.token_bytes(_NONCE)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), self._current.encode())
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID: self._current.encode()}, data=nonce + sealed))
        return out

    def decrypt(self, payloads: Iterable[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)  # not encrypted (older data): as it is
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise PayloadDecryptionError(
                    f"a Temporal payload is encrypted with key id ‘{key_id}’, which is not among the configured "
                    f"keys ({', '.join(sorted(self._ciphers))}); add it to {SETTING}")
            try:
                plain = cipher.decrypt(payload.data[:_NONCE], payload.data[_NONCE:], key_id.encode())
            except InvalidTag:
                raise PayloadDecryptionError(
                    f"a Temporal payload encrypted with key id ‘{key_id}’ failed its integrity check: it was "
                    "changed or sealed with another key of the same id") from None
            out.append(Payload.FromString(plain))
        return out


def data_converter(keys: PayloadKeys) -> DataConverter:
    """The default converter with our codec; failure messages and stack traces are encrypted too."""
    return replace(DataConverter.default, payload_codec=EncryptionCodec(keys),
                   failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


def converter_for(settings: Settings) -> DataConverter:
    return data_converter(load_keys(settings))
