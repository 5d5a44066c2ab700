"""旁门左道之如何让Python的重试代码更加优雅 (elegant retry code in Python)
https://kexue.fm/archives/9938

The post's final form: an object that is both an iterator and a context manager,
    for retry in Retry(5):
        with retry:
            body()
The iterator hands out the same object up to max_tries times and stops after a success; it sleeps only
between tries (never after the last); __exit__ records success or swallows the error. The post's __exit__
swallows every exception, KeyboardInterrupt and SystemExit included, so Ctrl-C is retried too: here only
`catch` (Exception by default) is retried and anything else goes straight through. `catch=BaseException`
gives the post's behaviour, for the experiment that shows the difference.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("kexue_runs")


class Retry:
    def __init__(self, max_tries: int = 5, delay: float = 2.0, backoff: float = 1.0,
                 catch: type[BaseException] | tuple[type[BaseException], ...] = Exception,
                 sleep: Callable[[float], None] | None = None, what: str = "attempt"):
        if max_tries < 1:
            raise ValueError(f"max_tries={max_tries}: allowed: an integer >= 1")
        self.max_tries, self.delay, self.backoff, self.catch = max_tries, delay, backoff, catch
        self.sleep, self.what = sleep if sleep is not None else time.sleep, what
        self.ok, self.error, self.attempt = False, None, 0

    def __iter__(self) -> Iterator[Retry]:
        for attempt in range(1, self.max_tries + 1):
            self.attempt = attempt
            yield self
            if self.ok or attempt == self.max_tries:
                return
            self.sleep(self.delay * self.backoff ** (attempt - 1))  # only between tries

    def __enter__(self) -> Retry:
        self.ok, self.error = False, None
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.ok = True
            return False
        if not issubclass(exc_type, self.catch):
            return False  # Ctrl-C, SystemExit, or an error the caller did not ask to retry: not swallowed
        self.error = exc
        log.warning("%s %d/%d failed: %s", self.what, self.attempt, self.max_tries, exc)
        return True
