"""Replay tokens: an execution as the sequence of choices made.

An execution is fully determined by its scenario and the choices made at
each scheduling point where more than one thread could run (the thread id
chosen) plus every random value the model asked for. A token is that
sequence, compact and printable::

    dbs1.<urlsafe base64 of zlib(varint stream)>

The ``dbs1`` prefix is the token version; a token of another version is
refused with a clear message. Choices are thread ids (stable: creation
order), not indices, so that a shrunk schedule keeps its meaning.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable

from .errors import ReplayError

VERSION = "dbs1"
#: zlib level of the token: within ~2% of level 9's size at an eighth of its time on long
#: schedules (level 9 cost more than the whole execution's scheduling).
LEVEL = 6


def varints(values: Iterable[int]) -> bytes:
    """Choices as LEB128 varints (one byte each below 128)."""
    vals = values if isinstance(values, (list, tuple)) else list(values)
    if vals and min(vals) >= 0 and max(vals) < 0x80:
        return bytes(vals)  # every choice fits one varint byte (the usual case: thread ids)
    out = bytearray()
    for v in vals:
        if v < 0:
            raise ValueError(f"replay choices are non-negative, got {v}")
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                out.append(b | 0x80)
            else:
                out.append(b)
                break
    return bytes(out)


def unvarints(data: bytes) -> list[int]:
    """The inverse of :func:`varints`; a varint cut in the middle is a :class:`ReplayError`."""
    out: list[int] = []
    v = shift = 0
    for b in data:
        v |= (b & 0x7F) << shift
        if b & 0x80:
            shift += 7
        else:
            out.append(v)
            v = shift = 0
    if shift:
        raise ReplayError("replay token is truncated (a choice is cut in the middle)")
    return out


def encode(choices: Iterable[int]) -> str:
    """Encode a choice sequence as a printable, versioned token."""
    return from_stream(zlib.compress(varints(choices), LEVEL))


def from_stream(raw: bytes) -> str:
    """The token of an already compressed choice stream (a zlib stream of :func:`varints`)."""
    return f"{VERSION}.{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


#: How much of a malformed token an error message quotes.
SHOWN = 40


def shown(token: str) -> str:
    """A token for an error message: quoted whole, or its first ``SHOWN`` characters and its length."""
    if len(token) <= SHOWN:
        return repr(token)
    return f"{token[:SHOWN]!r}… ({len(token)} chars)"


def decode(token: str) -> list[int]:
    """Decode a token made by :func:`encode`; refuse other versions clearly."""
    token = token.strip()
    if "." not in token:
        raise ReplayError(f"malformed replay token {shown(token)}: expected '{VERSION}.<data>'")
    version, _, body = token.partition(".")
    if version != VERSION:
        raise ReplayError(
            f"replay token version {version!r} is not supported by this dmabufsim (it reads {VERSION!r})"
        )
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        data = zlib.decompress(raw)
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise ReplayError(f"malformed replay token {shown(token)}: {exc}") from None
    return unvarints(data)
