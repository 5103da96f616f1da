"""A process's output kept as a bounded tail: the last bytes, and how much was cut.

`communicate()` held all of a step's output in memory (100 MB printed took the process
to 447 MB, issue 16). A reader thread per stream keeps only the last `keep` bytes, so
memory stays flat, and the stored text says how much was cut before it.
"""

from __future__ import annotations

import threading
from typing import IO

CHUNK = 64 * 1024
JOIN_S = 5.0  # a grandchild that kept the pipe open past the process's end: stop waiting


class Tail:
    """The last `keep` bytes of a stream, read on its own thread."""

    def __init__(self, stream: IO[bytes] | None, keep: int) -> None:
        self._keep = keep
        self._buf = bytearray()
        self.total = 0
        self._stream = stream
        self._thread = threading.Thread(target=self._read, name="opsloop-output", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        if self._stream is None:
            return
        with self._stream:
            while chunk := self._stream.read1(CHUNK):  # type: ignore[attr-defined]
                self.total += len(chunk)
                self._buf += chunk
                if len(self._buf) > 2 * self._keep:  # trim in batches, not per chunk
                    del self._buf[: -self._keep]

    def join(self) -> None:
        self._thread.join(JOIN_S)

    def text(self) -> str:
        """The tail as text, opened by `[... 99 MB cut ...]` when anything was cut."""
        data = bytes(self._buf[-self._keep :])
        cut = self.total - len(data)
        if cut:  # the tail may start inside a UTF-8 character: drop its continuation bytes
            start = next((i for i, b in enumerate(data[:4]) if b & 0xC0 != 0x80), 0)
            cut, data = cut + start, data[start:]
        text = data.decode("utf-8", errors="replace")
        return f"[... {size(cut)} cut ...]\n{text}" if cut else text


def read_tail(stream: IO[bytes] | None, keep: int) -> Tail:
    return Tail(stream, keep)


def size(n: int) -> str:
    """Bytes for people: 512 B, 12 KB, 99 MB, 3 GB (1 KB = 1,024 B)."""
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n} {unit}"
        n //= 1024
    return f"{n} GB"
