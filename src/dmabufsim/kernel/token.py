"""Replay tokens: an execution as the sequence of choices made.

An execution is fully determined by its scenario and the choices made at
each scheduling point where more than one thread could run (the thread id
chosen) plus every random value the model asked for. A token is that
sequence, compact and printable, with what it belongs to::

    dbs2.<scenario id>.<choices of the execution>.<urlsafe base64 of zlib(varint stream)>

Rules:

* R1 (version): the prefix is the token version. ``dbs2`` tokens are
  made; ``dbs1`` tokens (``dbs1.<data>``, no scenario id, no length) are
  still read. A token of another version is refused with a clear message.
* R2 (scenario): the scenario id (:attr:`~dmabufsim.kernel.identity.ScenarioId.short`)
  lets a replay refuse a token made for another scenario, and tell a token
  made for another version of the same scenario's code.
* R3 (length): the number of choices the whole execution made. A shrunk
  token holds fewer (its default tail is dropped, and a replay runs the
  defaults past the end); the length lets the replay check it rebuilt an
  execution of exactly that length, and say so when a token ran out early.
* R4 (damage): a token whose data ends early (cut when copied) is refused
  as truncated; the message shows where the token was cut, never silently
  a prefix of it.

Choices are thread ids (stable: creation order), not indices, so that a
shrunk schedule keeps its meaning.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ReplayError

#: The version of the tokens made (R1).
VERSION = "dbs2"
#: Older versions still read (R1).
READS = ("dbs1", "dbs2")
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


@dataclass(frozen=True)
class Token:
    """A parsed replay token: its choices and, from ``dbs2`` on, what it belongs to (R1-R3)."""

    version: str
    choices: list[int]
    #: The scenario's short id (R2); "" in a ``dbs1`` token.
    scenario: str = ""
    #: Choices of the whole execution (R3); None in a ``dbs1`` token.
    length: int | None = None


def encode(choices: Iterable[int], scenario: str = "", length: int | None = None) -> str:
    """Encode a choice sequence as a printable, versioned token.

    ``scenario``: the scenario's short id (R2); ``length``: the number of
    choices of the whole execution when ``choices`` is a shrunk prefix of
    the schedule (R3; default: ``len(choices)``).
    """
    vals = choices if isinstance(choices, (list, tuple)) else list(choices)
    n = len(vals) if length is None else length
    return from_stream(zlib.compress(varints(vals), LEVEL), scenario, n)


def from_stream(raw: bytes, scenario: str, length: int) -> str:
    """The token of an already compressed choice stream (a zlib stream of :func:`varints`)."""
    return f"{VERSION}.{scenario or '-'}.{length}.{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


def _body(token: str, body: str) -> list[int]:
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
        if not raw:
            raise ValueError("no data")
        z = zlib.decompressobj()
        data = z.decompress(raw)
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise ReplayError(f"malformed replay token {shown(token)}: {exc}") from None
    if not z.eof:  # R4: a zlib stream cut short decompresses to a prefix without complaint
        raise ReplayError(
            f"replay token {shown(token)} is truncated (its data ends early): copy the whole token"
        )
    return unvarints(data)


def parse(token: str) -> Token:
    """Parse a token of any version this dmabufsim reads (R1); refuse other versions clearly."""
    token = token.strip()
    if "." not in token:
        raise ReplayError(f"malformed replay token {shown(token)}: expected '{VERSION}.<data>'")
    version, _, rest = token.partition(".")
    if version not in READS:
        raise ReplayError(
            f"replay token version {version!r} is not supported by this dmabufsim (it reads "
            f"{', '.join(repr(v) for v in READS)})"
        )
    if version == "dbs1":
        return Token(version, _body(token, rest))
    fields = rest.split(".")
    if len(fields) != 3 or not fields[1].isdigit() or not fields[0]:
        raise ReplayError(
            f"malformed replay token {shown(token)}: expected '{VERSION}.<scenario>.<length>.<data>'"
        )
    sid, length, body = fields
    choices = _body(token, body)
    n = int(length)
    if len(choices) > n:
        raise ReplayError(f"malformed replay token {shown(token)}: {len(choices)} choices, but it says {n}")
    return Token(version, choices, "" if sid == "-" else sid, n)


#: How much of a malformed token an error message quotes.
SHOWN = 40


def shown(token: str) -> str:
    """A token for an error message: quoted whole, or its first ``SHOWN`` characters and its length."""
    if len(token) <= SHOWN:
        return repr(token)
    return f"{token[:SHOWN]!r}… ({len(token)} chars)"


def decode(token: str) -> list[int]:
    """The choices of a token of any version read (see :func:`parse`)."""
    return parse(token).choices
