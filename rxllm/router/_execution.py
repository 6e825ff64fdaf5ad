"""One routed request: choose a deployment, send, and on failure retry, move on or fall back.

The same engine serves plain requests and streams; what differs is the :class:`Sender`. For a
stream, a retry or fallback is allowed only while nothing has reached the subscribers
(``Sender.committed``): after the first chunk the error is the stream's error.

Rules (honest, typed errors - docs/contracts.md, 4 and 7 - applied to several deployments):

* **Retry** (same configuration) only on ``recoverable`` errors: 429, 5xx, connection and
  timeout errors, a stream cut before its first chunk. Never on client errors (400, 401, 404,
  quota, a context window too small, a bad parameter). At most ``num_retries`` retries.
* A retry goes to another ready deployment of the group that has not failed in this request
  when there is one (at once, no wait); otherwise back to one that failed, after exponential
  backoff with jitter, or after the provider's ``Retry-After`` when it gave one.
* **Fallbacks**: when the configuration gives up, its ``fallbacks`` are tried in order (each
  with its own deployments and retries, not its own fallbacks); a
  ``ContextWindowExceededError`` goes to ``context_window_fallbacks`` instead. A request the
  caller got wrong (any other ``BadRequestError``) or a cancellation is not sent elsewhere.
* **Time**: no attempt starts, and no wait is begun that would end, later than
  ``max_retry_time`` after the request started.
* **Cooldowns**: a deployment failing more than ``allowed_fails`` times within ``fail_window``
  is skipped by every request for ``cooldown_time``. Client errors the caller caused (400s)
  and cancellations do not count. A recoverable error's ``retry_after`` pauses its deployment
  for at most ``max_cooldown`` seconds.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import msgspec

from .._api import chat_call
from .._provider import ChatCall, Provider
from .._secrets import masked_url
from .._wire import HttpRequest
from ..errors import (
    APITimeoutError,
    BadRequestError,
    ContextWindowExceededError,
    LLMError,
    RateLimitError,
    ServiceUnavailableError,
    StreamCancelledError,
)
from ..stream import fetch_response
from ..types import ChatResponse, Message, Usage
from ._config import Deployment
from ._health import choose

if TYPE_CHECKING:
    from ._router import Settings
    from ._shared import Lease, SharedFailure, SharedState

__all__ = ["Attempt", "Execution", "FetchSender", "Group", "Pick", "Plan", "Policy", "Sender"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

log = logging.getLogger("rxllm.router")

#: Deployments one admission on the shared state may consider (the pick and alternates).
MAX_CANDIDATES = 8

Outcome = Literal["success", "error", "cancelled"]


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of a routed request, as reported to ``on_attempt`` callbacks."""

    #: The configuration the request named.
    config: str
    #: The configuration this attempt belongs to (``config`` or one of its fallbacks).
    group: str
    deployment: str
    provider: str
    model: str
    #: Where it was sent (credentials in the URL masked).
    api_base: str | None
    #: 1 for the first attempt of the request, counting retries and fallbacks.
    number: int
    stream: bool
    outcome: Outcome
    #: Seconds to the first chunk (streams) or to the whole response; None if neither came.
    latency: float | None
    #: Seconds from sending to the end of the attempt.
    duration: float
    error: LLMError | None = None
    #: True when this failure started the deployment's cooldown.
    cooled_down: bool = False


class Policy:
    """What routed requests use of their router, handed to each explicitly: time (``clock``;
    ``sleep``, which must advance it), chance (``rng``), the timing and health ``settings``
    (replaced by ``Router.configure``), the ``lock`` that guards every deployment's health
    state, the token ``estimate`` for tpm limits, and ``notify``, which reports an attempt;
    ``shared``, the state shared with other routers on Redis (None: this router's alone)."""

    __slots__ = ("clock", "estimate", "lock", "notify", "rng", "settings", "shared", "sleep")

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]],
        rng: random.Random,
        settings: Settings,
        lock: AbstractContextManager[Any],
        estimate: Callable[[str], int],
        notify: Callable[[Attempt], None],
        shared: SharedState | None = None,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.settings = settings
        self.lock = lock
        self.estimate = estimate
        self.notify = notify
        self.shared = shared


class Group:
    """The deployments one configuration resolved to for this request, and its policy."""

    __slots__ = ("deployments", "name", "num_retries", "strategy", "timeout")

    def __init__(
        self,
        name: str,
        deployments: tuple[Deployment, ...],
        strategy: str,
        num_retries: int,
        timeout: float | None,
    ) -> None:
        self.name = name
        self.deployments = deployments
        self.strategy = strategy
        self.num_retries = num_retries
        self.timeout = timeout


class Plan:
    """The primary group and the groups to fall back to, all resolved before any I/O."""

    __slots__ = ("context_window_fallbacks", "fallbacks", "name", "primary")

    def __init__(
        self,
        name: str,
        primary: Group,
        fallbacks: tuple[Group, ...],
        context_window_fallbacks: tuple[Group, ...],
    ) -> None:
        self.name = name
        self.primary = primary
        self.fallbacks = fallbacks
        self.context_window_fallbacks = context_window_fallbacks


class Pick:
    """A deployment chosen for an attempt, with its validated request."""

    __slots__ = ("call", "deployment", "group", "provider", "request")

    def __init__(
        self,
        group: Group,
        deployment: Deployment,
        call: ChatCall,
        provider: Provider,
        request: HttpRequest,
    ) -> None:
        self.group = group
        self.deployment = deployment
        self.call = call
        self.provider = provider
        self.request = request


class Sender(Protocol[T_co]):
    """How an attempt is sent, and what the engine may ask about it afterwards."""

    stream: bool

    def send(self, pick: Pick, succeeded: Callable[[], None]) -> Awaitable[T_co]:
        """Send one attempt. ``succeeded`` may be called as soon as it has succeeded (before
        the caller hears of it), so the attempt is reported first."""
        ...

    @property
    def committed(self) -> bool:
        """True once something reached the caller (or the caller left): no more attempts."""
        ...

    @property
    def cancelled(self) -> bool: ...

    def first_chunk_at(self) -> float | None: ...

    def usage(self) -> Usage | None: ...


class FetchSender:
    """Plain (non-streaming) requests."""

    stream = False

    def __init__(self) -> None:
        self._usage: Usage | None = None

    async def send(self, pick: Pick, succeeded: Callable[[], None]) -> ChatResponse:
        response = await fetch_response(pick.call, pick.provider, pick.request)
        self._usage = response.usage
        return response

    committed = False
    cancelled = False

    def first_chunk_at(self) -> float | None:
        return None

    def usage(self) -> Usage | None:
        return self._usage


def _retryable(error: LLMError) -> bool:
    return error.recoverable and not isinstance(error, BadRequestError)


def _falls_back(error: LLMError) -> bool:
    if isinstance(error, ContextWindowExceededError):
        return True
    return not isinstance(error, (BadRequestError, StreamCancelledError))


def _counts_against(error: LLMError) -> bool:
    """Does this failure say something about the deployment's health?"""
    return not isinstance(error, (BadRequestError, StreamCancelledError))


class Execution:
    """The state of one routed request."""

    def __init__(
        self,
        policy: Policy,
        plan: Plan,
        messages: list[Message],
        params: Mapping[str, Any],
        *,
        stream: bool,
    ) -> None:
        self._policy = policy
        self.plan = plan
        self._messages = messages
        self._params = dict(params)
        self._stream = stream
        self._first: Pick | None = None
        self._tokens: int | None = None
        self._deadline = math.inf
        #: Every attempt so far, in order.
        self.attempts: list[Attempt] = []

    @property
    def clock(self) -> Callable[[], float]:
        return self._policy.clock

    # --- before any I/O ------------------------------------------------------------------

    def first(self) -> Pick:
        """Choose the first deployment now and validate the request against it, so a bad
        request raises at call time. The attempt itself starts when :meth:`run` runs."""
        group = self.plan.primary
        deployment, wait = self._choose(group, {})
        usable = deployment is not None and wait <= 0
        pick = self._prepare(group, deployment if deployment is not None else group.deployments[0])
        self._first = pick if usable else None
        return pick

    def _prepare(self, group: Group, deployment: Deployment) -> Pick:
        options = deployment.call_options(group.timeout, self._params)
        call, provider, request = chat_call(options, self._messages, self._stream)
        return Pick(group, deployment, call, provider, request)

    def _estimate(self) -> int:
        """Tokens this request may use, for tpm limits: the prompt's estimate plus
        ``max_tokens`` (computed once, and only when a deployment has a tpm limit)."""
        if self._tokens is None:
            text = "\n".join(m.text for m in self._messages)
            limit = self._params.get("max_completion_tokens") or self._params.get("max_tokens")
            self._tokens = int(self._policy.estimate(text)) + int(limit or 0)
        return self._tokens

    def _choose(
        self, group: Group, retry_at: dict[Deployment, float]
    ) -> tuple[Deployment | None, float]:
        """The deployment for the next attempt and how long to wait before it.

        Ready now and not failed in this request beats ready now (its backoff over), which
        beats the one ready soonest. None when every deployment cools down or none can take
        the request before the deadline."""
        policy = self._policy
        with policy.lock:
            now = policy.clock()
            starts: list[tuple[float, Deployment]] = []
            for d in group.deployments:
                if d.state.cooling(now):
                    continue
                tokens = self._estimate() if d.tpm is not None else 0
                start = max(d.state.ready_at(d, now, tokens), retry_at.get(d, now))
                starts.append((start, d))
            if not starts:
                return None, 0.0
            fresh = [d for t, d in starts if t <= now and d not in retry_at]
            ready = fresh or [d for t, d in starts if t <= now]
            if ready:
                return choose(group.strategy, ready, policy.rng), 0.0
            soonest = min(t for t, _ in starts)
            if soonest > self._deadline:
                return None, soonest - now
            first = [d for t, d in starts if t == soonest]
            return choose(group.strategy, first, policy.rng), soonest - now

    def _unavailable(self, group: Group, wait: float) -> LLMError:
        """The error for a group that could not even be tried."""
        policy = self._policy
        now = policy.clock()
        with policy.lock:
            back = [d.state.cooldown_until - now for d in group.deployments]
        if all(b > 0 for b in back):
            first_back = min(back)
            return ServiceUnavailableError(
                f"router configuration {group.name!r}: every deployment is cooling down after "
                f"repeated failures (the first is back in {first_back:.1f} s)",
                retry_after=first_back,
            )
        later = "" if math.isinf(wait) else f" (the next slot is in {wait:.1f} s)"
        return RateLimitError(
            f"router configuration {group.name!r}: no deployment can take this request within "
            f"max_retry_time: rpm/tpm limits or Retry-After{later}",
            retry_after=None if math.isinf(wait) else wait,
        )

    # --- the attempts --------------------------------------------------------------------

    async def run(self, sender: Sender[T]) -> T:
        """Send the request, retrying and falling back as the configuration says."""
        plan = self.plan
        self._deadline = self._policy.clock() + self._policy.settings.max_retry_time
        try:
            return await self._run_group(plan.primary, sender)
        except LLMError as error:
            last = error
        if not _falls_back(last) or sender.committed:
            raise last
        context_window = isinstance(last, ContextWindowExceededError)
        chain = plan.context_window_fallbacks if context_window else plan.fallbacks
        for group in chain:
            if self._policy.clock() >= self._deadline:
                break
            log.info("router %r: falling back to %r after %s", plan.name, group.name, last)
            try:
                return await self._run_group(group, sender)
            except LLMError as error:
                last = error
                if not _falls_back(error) or sender.committed:
                    raise
        raise last

    async def _run_group(self, group: Group, sender: Sender[T]) -> T:
        policy = self._policy
        retry_at: dict[Deployment, float] = {}
        error: LLMError | None = None
        tries = 0
        while True:
            pick = self._first if group is self.plan.primary else None
            self._first = None
            if pick is not None and not self._still_ready(pick.deployment):
                pick = None
            if pick is None:
                deployment, wait = self._choose(group, retry_at)
                if deployment is None:
                    raise error or self._unavailable(group, wait)
                if wait > 0:
                    if policy.clock() + wait > self._deadline:
                        raise error or self._unavailable(group, wait)
                    await policy.sleep(wait)
                pick = self._prepare_reported(group, deployment)
            lease: Lease | None = None
            if policy.shared is not None:
                admitted, lease = await self._admit(pick, retry_at)
                if admitted is None:  # the shared limits refused: choose again, no retry counted
                    continue
                pick = admitted
            try:
                return await self._attempt(pick, sender, lease)
            except LLMError as exc:
                error = exc
                tries += 1
                if (
                    sender.committed
                    or not _retryable(exc)
                    or policy.clock() >= self._deadline
                    or tries > group.num_retries
                ):
                    raise
                retry_at[pick.deployment] = self._retry_time(exc, tries)

    def _prepare_reported(self, group: Group, deployment: Deployment) -> Pick:
        """:meth:`_prepare`, its failure reported as an attempt."""
        try:
            return self._prepare(group, deployment)
        except LLMError as exc:  # e.g. its key is no longer in the environment
            self._report(
                group=group,
                deployment=deployment,
                pick=None,
                outcome="error",
                error=exc,
                duration=0.0,
                latency=None,
            )
            raise

    # --- the state shared with other routers (Router(redis_url=...)) ----------------------

    async def _admit(
        self, pick: Pick, retry_at: Mapping[Deployment, float]
    ) -> tuple[Pick | None, Lease | None]:
        """Ask the shared state to admit ``pick`` (or, when it cannot take the request, the
        next of the group's ready deployments): one round trip. Returns the pick to send
        (None: every candidate refused; what Redis said is now in the local state) and its
        lease; ``pick`` itself, without a lease, when Redis could not be asked."""
        shared = self._policy.shared
        assert shared is not None
        group = pick.group
        candidates = self._candidates(pick, retry_at)
        tokens = [self._estimate() if d.tpm is not None else 0 for d in candidates]
        admission = await shared.admit(
            group.name, candidates, tokens, least_busy=group.strategy == "least-busy"
        )
        if admission is None:
            return pick, None
        chosen, lease = admission.deployment, admission.lease
        if chosen is None:
            return None, None
        if chosen is not pick.deployment:
            try:
                pick = self._prepare_reported(group, chosen)
            except LLMError:
                if lease is not None:
                    shared.release(lease, None)
                raise
        return pick, lease

    def _candidates(self, pick: Pick, retry_at: Mapping[Deployment, float]) -> list[Deployment]:
        """``pick``'s deployment, then the group's others that are ready now and have not
        failed in this request, in the order the strategy prefers them."""
        policy = self._policy
        group = pick.group
        with policy.lock:
            now = policy.clock()
            rest = [
                d
                for d in group.deployments
                if d is not pick.deployment
                and d not in retry_at
                and not d.state.cooling(now)
                and d.state.ready_at(d, now, self._estimate() if d.tpm is not None else 0) <= now
            ]
            order = [pick.deployment]
            while rest and len(order) < MAX_CANDIDATES:
                chosen = choose(group.strategy, rest, policy.rng)
                order.append(chosen)
                rest.remove(chosen)
        return order

    async def _shared_failure(
        self, group: Group, deployment: Deployment, error: LLMError
    ) -> SharedFailure | None:
        """Count a failure in the shared state (None: not one that counts, or Redis could not
        be asked; the local state decides then)."""
        policy = self._policy
        shared = policy.shared
        if shared is None or not _counts_against(error):
            return None
        settings = policy.settings
        return await shared.failure(
            group.name,
            deployment,
            pause=_pause(error, settings.max_cooldown),
            allowed_fails=settings.allowed_fails,
            fail_window=settings.fail_window,
            cooldown_time=settings.cooldown_time,
        )

    def _still_ready(self, deployment: Deployment) -> bool:
        policy = self._policy
        with policy.lock:
            now = policy.clock()
            if deployment.state.cooling(now):
                return False
            tokens = self._estimate() if deployment.tpm is not None else 0
            return deployment.state.ready_at(deployment, now, tokens) <= now

    def _retry_time(self, error: LLMError, retry: int) -> float:
        """When a deployment that just failed may be tried again: after the provider's
        ``Retry-After`` (already recorded on the deployment) or after exponential backoff with
        jitter: a random time between half and all of ``min(max_retry_delay, retry_delay *
        2**(retry - 1))``."""
        policy = self._policy
        now = policy.clock()
        if error.retry_after is not None:
            return now
        settings = policy.settings
        delay = min(settings.max_retry_delay, settings.retry_delay * 2.0 ** (retry - 1))
        return now + delay * (0.5 + 0.5 * policy.rng.random())

    async def _attempt(self, pick: Pick, sender: Sender[T], lease: Lease | None = None) -> T:
        policy = self._policy
        deployment = pick.deployment
        tokens = self._estimate() if deployment.tpm is not None else 0
        with policy.lock:
            started = policy.clock()
            entry = deployment.state.start(started, tokens)
        settled = False

        def settle(
            outcome: Outcome, error: LLMError | None = None, shared: SharedFailure | None = None
        ) -> None:
            """The attempt's end, reported once: the deployment's counts and health, then the
            callbacks (a stream calls it just before it completes its subscribers)."""
            nonlocal settled
            if settled:
                return
            settled = True
            with policy.lock:
                deployment.state.in_flight -= 1
                usage = sender.usage() if outcome == "success" else None
                if usage is not None and usage.total_tokens:
                    deployment.state.correct(entry, usage.total_tokens)
            if lease is not None and policy.shared is not None:
                used = usage.total_tokens if usage is not None else None
                policy.shared.release(lease, used or None)
            first_chunk = sender.first_chunk_at()
            latency = None if first_chunk is None else first_chunk - started
            duration = policy.clock() - started
            if latency is None and outcome == "success":
                latency = duration
            self._report(
                group=pick.group,
                deployment=deployment,
                pick=pick,
                outcome=outcome,
                error=error,
                duration=duration,
                latency=latency,
                shared=shared,
            )

        try:
            result = await sender.send(pick, lambda: settle("success"))
        except LLMError as exc:
            exc._with_context(
                provider=pick.call.provider, model=pick.call.model, secret=pick.call.secrets
            )
            if policy.shared is None:
                settle("error", exc)
                raise
            failure = None
            try:
                failure = await self._shared_failure(pick.group, deployment, exc)
            finally:
                settle("error", exc, failure)
            raise
        except BaseException:
            settle("cancelled")
            raise
        settle("cancelled" if sender.cancelled else "success")
        return result

    def _report(
        self,
        *,
        group: Group,
        deployment: Deployment,
        pick: Pick | None,
        outcome: Outcome,
        error: LLMError | None,
        duration: float,
        latency: float | None,
        shared: SharedFailure | None = None,
    ) -> None:
        """Update the deployment's health and tell the callbacks (``shared``: what Redis
        made of this failure, which then decides the cooldown)."""
        policy = self._policy
        settings = policy.settings
        cooled = False
        with policy.lock:
            state = deployment.state
            now = policy.clock()
            if outcome == "success" and latency is not None:
                state.record_latency(latency)
            elif error is not None and _counts_against(error):
                if isinstance(error, APITimeoutError):
                    state.record_latency(duration)
                pause = _pause(error, settings.max_cooldown)
                if pause:
                    state.not_before = max(state.not_before, now + pause)
                if shared is None:
                    cooled = state.record_failure(
                        now,
                        allowed_fails=settings.allowed_fails,
                        fail_window=settings.fail_window,
                        cooldown_time=settings.cooldown_time,
                    )
                else:
                    cooled = shared.cooled
                    state.record_shared_failure(
                        now,
                        cooled=cooled,
                        cooldown=shared.cooldown,
                        pause=shared.pause,
                        fail_window=settings.fail_window,
                    )
        base = pick.call.api_base if pick is not None else deployment.api_base
        record = Attempt(
            config=self.plan.name,
            group=group.name,
            deployment=deployment.id,
            provider=deployment.provider,
            model=deployment.model,
            api_base=None if base is None else masked_url(base),
            number=len(self.attempts) + 1,
            stream=self._stream,
            outcome=outcome,
            latency=latency,
            duration=duration,
            error=error,
            cooled_down=cooled,
        )
        self.attempts.append(record)
        if cooled:
            log.warning(
                "router: deployment %s cools down for %.1f s after repeated failures (last: %s)",
                deployment.id,
                settings.cooldown_time,
                error,
            )
        else:
            log.debug(
                "router %r: attempt %d on %s: %s",
                self.plan.name,
                record.number,
                record.deployment,
                outcome if error is None else error,
            )
        policy.notify(record)


def _pause(error: LLMError, max_cooldown: float) -> float | None:
    """How long a recoverable error's ``retry_after`` keeps its deployment out: at most
    ``max_cooldown`` (one ``Retry-After: 1e9`` must not disable it for decades); None when the
    error named no usable wait."""
    wait = error.retry_after
    if not error.recoverable or wait is None or not wait > 0:  # NaN fails the comparison too
        return None
    return min(wait, max_cooldown)
