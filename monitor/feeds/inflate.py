"""Bounded decompression: a feed body is never inflated past ``max_bytes``.

A gzip bomb (1 MB of zeros -> gigabytes) is refused after ``max_bytes`` of output whichever way
it arrives: as ``Content-Encoding: gzip``/``deflate`` (decoded here, chunk by chunk, instead of
by httpx, whose decoders have no output bound) or as a gzip file served without the header.
zlib's ``max_length`` makes each step produce at most what is still allowed, so the memory used
is bounded by the limit, not by the compression ratio.
"""

from __future__ import annotations

import zlib

from monitor.errors import FetchError

GZIP_MAGIC = b"\x1f\x8b"
# zlib window bits: 16 + 15 reads a gzip member; 15 a zlib stream; -15 raw deflate.
_GZIP, _ZLIB, _RAW = 31, 15, -15
_ENCODINGS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _ZLIB}


class DecompressionError(FetchError):
    """A compressed body is corrupt, in an encoding we do not read, or inflates past the limit."""


class BoundedInflater:
    """Incremental decoder of one Content-Encoding whose total output stays <= ``max_bytes``."""

    def __init__(self, encoding: str, max_bytes: int) -> None:
        wbits = _ENCODINGS.get(encoding.strip().lower())
        if wbits is None:
            raise DecompressionError(f"unsupported Content-Encoding {encoding!r}")
        self._wbits = wbits
        self._decoder = zlib.decompressobj(wbits)
        self._max_bytes = max_bytes
        self._produced = 0
        self._first = True

    def feed(self, data: bytes) -> bytes:
        """Inflate the next compressed chunk; DecompressionError past the limit or on bad data."""
        out = bytearray()
        while data:
            try:
                out += self._step(data)
            except zlib.error as exc:
                if not (self._first and self._wbits == _ZLIB):
                    raise DecompressionError(f"corrupt compressed body: {exc}") from exc
                # "deflate" servers often send raw deflate without the zlib header.
                self._wbits, self._decoder = _RAW, zlib.decompressobj(_RAW)
                continue
            self._first = False
            data = self._decoder.unconsumed_tail
            if self._decoder.eof:  # a concatenated gzip member may follow
                data = self._decoder.unused_data
                if data and self._wbits == _GZIP:
                    self._decoder = zlib.decompressobj(_GZIP)
                else:
                    data = b""
        return bytes(out)

    def finish(self) -> bytes:
        """The rest of the output; DecompressionError when the stream stopped short."""
        rest = self._checked(self._decoder.flush(self._allowance()))
        if not self._decoder.eof and not self._first:
            raise DecompressionError("compressed body is truncated")
        return rest

    def _step(self, data: bytes) -> bytes:
        return self._checked(self._decoder.decompress(data, self._allowance()))

    def _allowance(self) -> int:
        # One byte more than allowed, so that crossing the limit is seen, never hidden.
        return self._max_bytes - self._produced + 1

    def _checked(self, chunk: bytes) -> bytes:
        self._produced += len(chunk)
        if self._produced > self._max_bytes:
            raise DecompressionError(
                f"body inflates past the {self._max_bytes}-byte limit "
                "(MONITOR_POLL__MAX_BODY_BYTES)"
            )
        return chunk


def inflate_gzip(body: bytes, max_bytes: int) -> bytes:
    """A whole gzip body (gzip file served without Content-Encoding), bounded like the rest."""
    inflater = BoundedInflater("gzip", max_bytes)
    return inflater.feed(body) + inflater.finish()
