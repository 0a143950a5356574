"""Backoff for one request at a time: a crawl never retries a whole source, let alone itself.

Each page request (endpoints) or listing call (object stores) is tried up to the source's
``retries`` times, waiting with tenacity's jittered exponential backoff in between, and only
for failures that may pass (5xx, 429, timeouts, dropped connections; Steward errors marked
``transient``). What keeps failing is reported with the number of attempts.
"""

from __future__ import annotations

import tenacity

MAX_WAIT = 30.0


def backoff(initial: float, maximum: float = MAX_WAIT) -> tenacity.wait.wait_base:
    """``initial`` seconds, doubling up to ``maximum``, plus up to ``initial`` of jitter."""
    return tenacity.wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)


def seconds(wait: tenacity.wait.wait_base, attempt: int) -> float:
    """How long ``wait`` says to sleep after failed attempt number ``attempt``."""
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.attempt_number = attempt
    return float(wait(state))
