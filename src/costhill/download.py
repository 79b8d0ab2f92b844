"""Download one file over HTTP(S) into an open file, surviving what networks do.

A transfer that ends early is continued with a ``Range`` request (or started again where the
server ignores ranges); a stalled server is a timeout; a refused connection or a 5xx answer is
retried, after a wait that doubles each time. A 4xx answer (404: the mirror lacks the file) is
not retried: asking again would get the same answer. What the bytes must be is the caller's check
(``data.fetch`` verifies them, and keeps them only if they pass).
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from .errors import DataError

ProgressFn = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class Retry:
    """How hard to try: ``attempts`` in all, waiting ``backoff`` seconds after the first failure,
    doubling each time; ``timeout`` seconds of silence from the server count as a failure.

    >>> [Retry(attempts=4, backoff=0.5).wait(n) for n in range(1, 4)]
    [0.5, 1.0, 2.0]
    """

    attempts: int = 4
    backoff: float = 1.0
    timeout: float = 30.0

    def wait(self, failures: int) -> float:
        return self.backoff * 2 ** (failures - 1)


DEFAULT_RETRY = Retry()


class _Permanent(Exception):
    """A failure that asking again would repeat."""


class _EndedEarly(Exception):
    pass


def download(
    url: str,
    out: BinaryIO,
    *,
    name: str,
    retry: Retry = DEFAULT_RETRY,
    progress: ProgressFn | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write the body at ``url`` to ``out``; return its size in bytes.

    Raises:
      DataError: naming the URL and the last failure, once ``retry.attempts`` have failed or
        the server answered that the file is not there.
    """
    failures = 0
    while True:
        try:
            return _transfer(url, out, name, retry.timeout, progress)
        except _Permanent as err:
            raise DataError(f"{url}: download failed ({err}); not retried") from None
        except (_EndedEarly, http.client.HTTPException, OSError, ValueError) as err:
            failures += 1
            reason = _reason(err)
            if failures >= retry.attempts:
                raise DataError(
                    f"{url}: download failed after {failures} attempts ({reason})"
                ) from None
            sleep(retry.wait(failures))


def _reason(err: Exception) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, TimeoutError):
        return "the server sent nothing for the timeout"
    return str(getattr(err, "reason", None) or err)


def _transfer(
    url: str, out: BinaryIO, name: str, timeout: float, progress: ProgressFn | None
) -> int:
    """One attempt: continue from what ``out`` already holds where the server allows it."""
    have = out.tell()
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the range starts past the end: start again
            out.seek(0)
            out.truncate()
            raise _EndedEarly("the server refused to continue the transfer") from None
        if 400 <= err.code < 500:
            raise _Permanent(f"HTTP {err.code} {err.reason}") from None
        raise
    with response:
        if have and response.status != 206:  # the server ignored the range: start again
            out.seek(0)
            out.truncate()
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        done = have
        while chunk := response.read(1 << 16):
            out.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(name, done, total)
    if total is not None and done < total:
        raise _EndedEarly(f"the transfer ended at {done:,} of {total:,} bytes")
    return done
