"""What the router knows about each deployment, shared by every request: failures and
cooldowns, ``Retry-After`` pauses, in-flight counts, latency, and the rpm/tpm windows; and the
strategies that choose among the deployments ready to take a request.

All of it is guarded by the router's lock (touched once per attempt, never per chunk). Times
come from the router's clock, so tests can drive cooldowns with a fake one.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._config import Deployment

__all__ = ["LIMIT_WINDOW", "DeploymentState", "choose"]

#: The window of the ``rpm`` and ``tpm`` limits, in seconds.
LIMIT_WINDOW = 60.0
#: Weight of a new sample in the latency moving average.
LATENCY_ALPHA = 0.3


class DeploymentState:
    """The mutable facts about one deployment."""

    __slots__ = (
        "cooldown_until",
        "failures",
        "in_flight",
        "latency",
        "limited_until",
        "not_before",
        "requests",
        "shared_in_flight",
        "tokens",
        "tokens_used",
    )

    def __init__(self) -> None:
        #: Times of recent failures (within the router's ``fail_window``).
        self.failures: deque[float] = deque()
        #: Skipped by every request until then (repeated failures).
        self.cooldown_until = -math.inf
        #: Not sent to before then (the provider's ``Retry-After``).
        self.not_before = -math.inf
        #: Not sent to before then: the shared rpm/tpm windows were full (other instances used
        #: the capacity; learnt from Redis, ``Router(redis_url=...)``).
        self.limited_until = -math.inf
        self.in_flight = 0
        #: Requests in flight on every instance when Redis last said (None: never asked).
        self.shared_in_flight: int | None = None
        #: Moving average of time to first chunk (streams) or to the response; None: untried.
        self.latency: float | None = None
        #: Start times of recent requests (rpm) and [time, tokens] of recent ones (tpm).
        self.requests: deque[float] = deque()
        self.tokens: deque[list[float]] = deque()
        #: The sum of the tokens in ``tokens`` (kept as they come and go).
        self.tokens_used = 0.0

    # --- failures and cooldowns --------------------------------------------------------

    def record_failure(
        self, now: float, *, allowed_fails: int, fail_window: float, cooldown_time: float
    ) -> bool:
        """Count a failure; start a cooldown when more than ``allowed_fails`` fell within
        ``fail_window``. Returns True when a cooldown started."""
        failures = self.failures
        failures.append(now)
        while failures and failures[0] <= now - fail_window:
            failures.popleft()
        if cooldown_time > 0 and len(failures) > allowed_fails:
            self.cooldown_until = now + cooldown_time
            failures.clear()
            return True
        return False

    def record_shared_failure(
        self, now: float, *, cooled: bool, cooldown: float, pause: float, fail_window: float
    ) -> None:
        """A failure that Redis counted for every instance: ``cooled`` when it started the
        cooldown; ``cooldown`` and ``pause``, the seconds left of each (0: none)."""
        failures = self.failures
        failures.append(now)
        while failures and failures[0] <= now - fail_window:
            failures.popleft()
        if cooled:
            failures.clear()
        if cooldown > 0:
            self.cooldown_until = max(self.cooldown_until, now + cooldown)
        if pause > 0:
            self.not_before = max(self.not_before, now + pause)

    def record_latency(self, seconds: float) -> None:
        old = self.latency
        self.latency = seconds if old is None else old + LATENCY_ALPHA * (seconds - old)

    def cooling(self, now: float) -> bool:
        return self.cooldown_until > now

    # --- rpm / tpm ---------------------------------------------------------------------

    def start(self, now: float, tokens: int) -> list[float]:
        """A request starts: count it in the windows; returns its tpm entry (to correct it
        with the real usage later, :meth:`correct`)."""
        self.in_flight += 1
        self._trim(now)
        self.requests.append(now)
        entry = [now, float(tokens)]
        self.tokens.append(entry)
        self.tokens_used += tokens
        return entry

    def correct(self, entry: list[float], tokens: int) -> None:
        """A request's tpm entry becomes its real usage."""
        if entry[0] != -math.inf:  # still in the window
            self.tokens_used += tokens - entry[1]
        entry[1] = float(tokens)

    def _trim(self, now: float) -> None:
        """Forget what fell out of the windows (so they never grow beyond one window's
        requests, limits or not)."""
        horizon = now - LIMIT_WINDOW
        requests = self.requests
        while requests and requests[0] <= horizon:
            requests.popleft()
        entries = self.tokens
        while entries and entries[0][0] <= horizon:
            gone = entries.popleft()
            self.tokens_used -= gone[1]
            gone[0] = -math.inf  # out of the window: a later correction no longer counts
        if not entries:
            self.tokens_used = 0.0

    def ready_at(self, deployment: Deployment, now: float, tokens: int) -> float:
        """The earliest time this deployment may take a request of ``tokens`` tokens
        (``now`` when it may at once, ``inf`` when the request can never fit its tpm)."""
        at = max(now, self.not_before, self.limited_until)
        rpm, tpm = deployment.rpm, deployment.tpm
        if rpm is None and tpm is None:
            return at
        self._trim(now)
        if rpm is not None:
            requests = self.requests
            if len(requests) >= rpm:
                at = max(at, requests[len(requests) - rpm] + LIMIT_WINDOW)
        if tpm is not None:
            if tokens > tpm:
                return math.inf
            entries = self.tokens
            used = self.tokens_used
            for when, n in entries:
                if used + tokens <= tpm:
                    break
                used -= n
                at = max(at, when + LIMIT_WINDOW)
        return at


def choose(strategy: str, candidates: Sequence[Deployment], rng: random.Random) -> Deployment:
    """One deployment among ``candidates`` (all ready), by the group's strategy.

    * ``simple-shuffle``: random, in proportion to ``weight``;
    * ``least-busy``: the fewest requests in flight (ties: by weight);
    * ``lowest-latency``: the lowest moving-average latency; an untried deployment is tried
      first, so every deployment gets measured (ties: by weight).
    """
    if len(candidates) > 1:
        if strategy == "least-busy":
            least = min(d.state.in_flight for d in candidates)
            candidates = [d for d in candidates if d.state.in_flight == least]
        elif strategy == "lowest-latency":
            best = min(_latency(d) for d in candidates)
            candidates = [d for d in candidates if _latency(d) == best]
    if len(candidates) == 1:
        return candidates[0]
    return rng.choices(candidates, weights=[d.weight for d in candidates])[0]


def _latency(deployment: Deployment) -> float:
    """The latency to compare; an untried deployment comes first."""
    latency = deployment.state.latency
    return -1.0 if latency is None else latency
