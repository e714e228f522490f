"""The replay log: every choice an execution made, kept compact as it grows.

An execution is determined by its scenario and its choices (the thread id
picked at each scheduling point with more than one runnable thread, and
every schedule-controlled random value); the replay token is that sequence
(:mod:`dmabufsim.kernel.token`). A short execution makes a few dozen
choices; a soak makes millions, and a Python list of them would grow by
8 bytes a choice (more for large thread ids). So the log keeps a plain list
for the hot path to append to and, every so often, moves it into a zlib
stream of varints -- the token's own encoding -- at a byte or less a choice.

Rules:

* R1 (hot path): the runtime appends to :attr:`ChoiceLog.recent`, a plain
  list, and calls :meth:`ChoiceLog.compact` from its periodic check (no
  extra branch per scheduling point). ``compact`` empties that same list in
  place, so a reference to it stays valid.
* R2 (same token): :func:`token_of` the finished sequence is the token of
  the whole sequence. A log that was never compacted encodes exactly as
  :func:`dmabufsim.kernel.token.encode` does; a compacted one is the same
  zlib stream written in pieces, which decodes to the same choices. The
  token is made only when asked for (an explorer runs thousands of
  executions whose tokens nobody reads).
* R3 (same choices): :meth:`ChoiceLog.choices` is the whole sequence: a
  tuple when the log was never compacted, else a :class:`Choices` that
  decodes the stream on first use (a soak's choices are rarely read).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import overload

from . import token as _token

#: Choices held in the plain list before they are compacted (about 1 MiB of list).
COMPACT_AT = 1 << 17


class Choices(Sequence[int]):
    """A long execution's choices, decoded from the compacted log on first use."""

    __slots__ = ("_data", "_len", "_list")

    def __init__(self, data: bytes, n: int) -> None:
        self._data = data  # a complete zlib stream of varints
        self._len = n
        self._list: list[int] | None = None

    def _all(self) -> list[int]:
        if self._list is None:
            self._list = _token.unvarints(zlib.decompress(self._data))
            assert len(self._list) == self._len, "choice log corrupted"
        return self._list

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...
    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        return self._all()[i]

    def __iter__(self) -> Iterator[int]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Choices):
            return self._len == other._len and self._data == other._data
        if isinstance(other, (tuple, list)):
            return tuple(self._all()) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._data)

    def __repr__(self) -> str:
        return f"<Choices {self._len} choices, {len(self._data)} bytes compressed>"


class ChoiceLog:
    """The choices of one execution, appended by the runtime (see the module rules)."""

    __slots__ = ("_n", "_parts", "_z", "recent")

    def __init__(self) -> None:
        #: The newest choices, appended to directly by the runtime (R1).
        self.recent: list[int] = []
        self._z: zlib._Compress | None = None
        self._parts: list[bytes] = []
        self._n = 0  # choices compacted so far

    def __len__(self) -> int:
        return self._n + len(self.recent)

    def compact(self) -> None:
        """Move the recent choices into the compressed stream (R1)."""
        recent = self.recent
        if not recent:
            return
        if self._z is None:
            self._z = zlib.compressobj(_token.LEVEL)
        out = self._z.compress(_token.varints(recent))
        if out:
            self._parts.append(out)
        self._n += len(recent)
        recent.clear()

    def _stream(self) -> bytes:
        """The whole log as one complete zlib stream (the log can no longer grow)."""
        self.compact()
        assert self._z is not None
        self._parts.append(self._z.flush())
        data = b"".join(self._parts)
        self._parts = [data]
        self._z = None
        return data

    def choices(self) -> Sequence[int]:
        """The execution ended: its choices (R3). Call once."""
        if self._z is None and not self._parts:
            return tuple(self.recent)
        n = len(self)
        return Choices(self._stream(), n)

    def finish(self, scenario: str = "") -> tuple[str, Sequence[int]]:
        """The execution ended: its token (R2) and its choices (R3). Call once."""
        seq = self.choices()
        return token_of(seq, scenario), seq


def token_of(choices: Sequence[int], scenario: str = "") -> str:
    """The replay token of a finished log's :meth:`ChoiceLog.choices` (R2), for scenario id ``scenario``."""
    if isinstance(choices, Choices):
        return _token.from_stream(choices._data, scenario, len(choices))
    return _token.encode(choices, scenario)
