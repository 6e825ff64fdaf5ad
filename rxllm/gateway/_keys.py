"""Virtual keys: who may call the gateway, for which models, how much and how fast.

A key is ``sk-`` + random text, shown once by ``POST /key/generate``; the store keeps only its
SHA-256 hex digest (the ``token``, LiteLLM's form, so ``/key/info`` and ``/key/delete`` take
either). Several gateway processes share one SQLite file (WAL mode, a busy timeout): spend is
added with ``UPDATE ... SET spend = spend + ?``, never read and written back, so concurrent
workers' totals add up exactly.

:meth:`KeyStore.lookup` runs on every request: the parts of a key that never change (models,
limits, expiry, metadata) are cached in the process, and its spend is read fresh from the file
each time (one indexed ``SELECT``), so a budget and a deletion made by any worker hold at once.

A request goes: ``sent = authenticate(headers)``; the master key is the server's to recognise;
``key = store.lookup(sent)`` or :func:`unauthenticated`; ``key.refusal(model, now)``;
``limits.admit(key, now)``; and when the answer is done, ``store.add_spend(key.token, ...)`` and
``limits.add_tokens(key, prompt + completion, now)``.

The management endpoints (:func:`key_routes`) follow LiteLLM's proxy: ``POST /key/generate``,
``GET /key/info?key=``, ``POST /key/delete`` and ``GET /key/list``, with its field names, behind
the master key. A refusal is a :class:`GatewayError`:

- 401 ``invalid_api_key`` (type ``invalid_request_error``, as OpenAI sends) for a missing,
  unknown or expired key, and for a management call without the master key;
- 403 ``key_model_access_denied`` (``param: "model"``) for a model the key may not use;
- 429 ``rate_limit_exceeded`` with ``retry_after`` for the rpm/tpm limits (type ``requests`` or
  ``tokens``, as OpenAI words them);
- 400 ``budget_exceeded`` (LiteLLM's type and words) for a spent budget. Not 429: OpenAI's and
  Anthropic's SDKs retry a 429 by themselves, and a hard budget does not come back in seconds;
  a 400 is raised at once as ``BadRequestError``. Anthropic-format clients read
  ``billing_error``.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import logging
import math
import re
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from typing import Annotated, Any, Protocol

import msgspec
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from ._errors import GatewayError, describe, openai_error_body

__all__ = [
    "BUDGET_STATUS",
    "DeleteKeys",
    "Duration",
    "GenerateKey",
    "KeyLimits",
    "KeyStore",
    "VirtualKey",
    "authenticate",
    "hash_key",
    "key_routes",
    "parse_duration",
    "unauthenticated",
]

log = logging.getLogger("rxllm.gateway")

#: What every key starts with (LiteLLM's rule for a custom key too).
KEY_PREFIX = "sk-"
#: The shortest custom key ``/key/generate`` takes (LiteLLM's minimum).
MIN_CUSTOM_KEY_LENGTH = 16
#: The status of a refusal for a spent budget (see the module's docstring).
BUDGET_STATUS = 400
#: The rate-limit window, in seconds.
WINDOW = 60.0
#: Keys whose fixed parts one process keeps.
CACHE_SIZE = 10_000
#: Waiting for another process's write lock, in seconds.
BUSY_TIMEOUT = 5.0
#: The last second a datetime can show (9999-12-31T23:59:59Z).
_MAX_EPOCH = 253_402_300_799.0

NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]


# --- request bodies --------------------------------------------------------------------------


class GenerateKey(msgspec.Struct, kw_only=True):
    """The body of ``POST /key/generate`` (LiteLLM's field names; unknown fields are ignored)."""

    key_alias: str | None = None
    duration: str | None = None
    models: list[str] | None = None
    max_budget: NonNegativeFloat | None = None
    rpm_limit: NonNegativeInt | None = None
    tpm_limit: NonNegativeInt | None = None
    metadata: dict[str, Any] | None = None
    budget_duration: str | None = None
    key: str | None = None
    spend: NonNegativeFloat | None = None
    user_id: str | None = None
    # LiteLLM's settings that this gateway does not enforce: a key asking for one is refused
    # rather than made silently weaker than asked (see _UNSUPPORTED).
    team_id: Any = None
    max_parallel_requests: Any = None
    model_max_budget: Any = None
    model_rpm_limit: Any = None
    model_tpm_limit: Any = None
    budget_limits: Any = None
    tpd_limit: Any = None
    blocked: Any = None
    aliases: Any = None
    allowed_routes: Any = None


_UNSUPPORTED = (
    "team_id",
    "max_parallel_requests",
    "model_max_budget",
    "model_rpm_limit",
    "model_tpm_limit",
    "budget_limits",
    "tpd_limit",
    "blocked",
    "aliases",
    "allowed_routes",
)


class DeleteKeys(msgspec.Struct, kw_only=True):
    """The body of ``POST /key/delete``: keys (plain or hashed) or their aliases."""

    keys: list[str] | None = None
    key_aliases: list[str] | None = None


# --- durations -------------------------------------------------------------------------------


class Duration(msgspec.Struct, frozen=True):
    """A LiteLLM duration: ``count`` of ``unit`` (s, m, h, d, w or mo)."""

    count: int
    unit: str


_DURATION = re.compile(r"(\d+)(mo|s|m|h|d|w)")
_DURATION_WORDS = {"hourly": "1h", "daily": "24h", "weekly": "7d", "monthly": "30d"}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, field: str = "duration") -> Duration:
    """``"30s"``, ``"30m"``, ``"1h"``, ``"7d"``, ``"2w"``, ``"1mo"`` (or LiteLLM's ``"daily"``
    words) -> a :class:`Duration`; anything else is a 400 naming ``field``."""
    spelled = _DURATION_WORDS.get(text.strip().lower(), text.strip())
    match = _DURATION.fullmatch(spelled)
    if match is None or int(match.group(1)) == 0:
        raise _bad_field(
            field,
            f"Invalid {field} {text!r}: a positive whole number and s, m, h, d, w or mo "
            "('30s', '30m', '1h', '7d', '1mo')",
        )
    return Duration(int(match.group(1)), match.group(2))


def _add_months(epoch: float, months: int) -> float:
    """``epoch`` moved ``months`` calendar months on (UTC), the day clamped to the month's end."""
    start = datetime.fromtimestamp(epoch, tz=timezone.utc)
    year, month0 = divmod(start.month - 1 + months, 12)
    year += start.year
    day = min(start.day, calendar.monthrange(year, month0 + 1)[1])
    return start.replace(year=year, month=month0 + 1, day=day).timestamp()


def _shift(epoch: float, duration: Duration, times: int = 1) -> float:
    """``epoch`` plus ``times`` durations."""
    if duration.unit == "mo":
        return _add_months(epoch, duration.count * times)
    return epoch + duration.count * _SECONDS[duration.unit] * times


def _after(start: float, duration: Duration, field: str) -> float:
    """When a duration that begins at ``start`` ends (a 400 if after the year 9999)."""
    try:
        end = _shift(start, duration)
    except (ValueError, OverflowError):
        end = math.inf
    if end > _MAX_EPOCH:
        raise _bad_field(field, f"{field} is too long: it would end after the year 9999")
    return end


def _next_boundary(anchor: float, duration: Duration, now: float) -> float:
    """The first ``anchor + k * duration`` (k >= 1) after ``now``: budget windows are counted
    from the key's creation."""
    if duration.unit != "mo":
        step = duration.count * _SECONDS[duration.unit]
        return anchor + (math.floor((now - anchor) / step) + 1) * step
    start = datetime.fromtimestamp(anchor, tz=timezone.utc)
    end = datetime.fromtimestamp(now, tz=timezone.utc)
    months = (end.year - start.year) * 12 + end.month - start.month
    k = max(1, months // duration.count - 1)
    while _shift(anchor, duration, k) <= now:
        k += 1
    return _shift(anchor, duration, k)


# --- keys ------------------------------------------------------------------------------------


def hash_key(key: str) -> str:
    """A key's stored form: its SHA-256 hex digest (LiteLLM's ``token``)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _token_of(key_or_hash: str) -> str:
    """The token for a plain key or a hash (a value that starts with ``sk-`` is a plain key:
    LiteLLM's rule)."""
    return hash_key(key_or_hash) if key_or_hash.startswith(KEY_PREFIX) else key_or_hash


def _key_name(key: str) -> str:
    """The abbreviated key a listing may show (LiteLLM's ``key_name``): ``sk-...abcd``."""
    return f"{KEY_PREFIX}...{key[-4:]}"


class VirtualKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key as a request sees it; ``spend`` as read when it was looked up."""

    token: str
    key_name: str
    key_alias: str | None = None
    #: Model names (or ``*`` patterns) the key may call; empty: all.
    models: tuple[str, ...] = ()
    max_budget: float | None = None
    spend: float = 0.0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    #: Epoch seconds after which the key is refused; None: never.
    expires: float | None = None
    metadata: dict[str, Any] = {}
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    user_id: str | None = None
    created_at: float = 0.0

    def allows(self, model: str) -> bool:
        """Whether the key may call ``model`` (the name the client asked for)."""
        if not self.models:
            return True
        return any(
            pattern in ("*", "all-proxy-models")
            or pattern == model
            or ("*" in pattern and fnmatchcase(model, pattern))
            for pattern in self.models
        )

    def refusal(self, model: str, now: float) -> GatewayError | None:
        """Why a request for ``model`` at ``now`` is refused (expired, model not allowed,
        budget spent), or None. Rate limits are :class:`KeyLimits`'s."""
        if self.expires is not None and now >= self.expires:
            return GatewayError(
                401,
                f"Authentication Error - Expired Key. Key {self.key_name} expired at "
                f"{_iso(self.expires)}",
                code="invalid_api_key",
            )
        if not self.allows(model):
            return GatewayError(
                403,
                f"The requested model {model!r} is not available for this API key. "
                f"This key can only access models={list(self.models)}",
                openai_type="key_model_access_denied",
                code="model_not_allowed",
                param="model",
            )
        if self.max_budget is not None and self.spend >= self.max_budget:
            return GatewayError(
                BUDGET_STATUS,
                f"Budget has been exceeded! Current cost: {self.spend}, "
                f"Max budget: {self.max_budget}",
                openai_type="budget_exceeded",
                code="budget_exceeded",
                anthropic_type="billing_error",
            )
        return None


class _Row(msgspec.Struct):
    """One row of the keys table, in :data:`_COLUMNS`' order."""

    id: int
    token: str
    key_name: str
    key_alias: str | None
    models: str
    max_budget: float | None
    spend: float
    rpm_limit: int | None
    tpm_limit: int | None
    expires: float | None
    budget_duration: str | None
    budget_reset_at: float | None
    metadata: str
    user_id: str | None
    created_at: float
    last_active: float | None
    prompt_tokens: int
    completion_tokens: int
    requests: int


_COLUMNS = ", ".join(_Row.__struct_fields__)
#: All but ``id``, which SQLite assigns (never reused: AUTOINCREMENT).
_INSERTED = _Row.__struct_fields__[1:]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS rxllm_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token TEXT NOT NULL UNIQUE,
    key_name TEXT NOT NULL,
    key_alias TEXT UNIQUE,
    models TEXT NOT NULL,
    max_budget REAL,
    spend REAL NOT NULL DEFAULT 0,
    rpm_limit INTEGER,
    tpm_limit INTEGER,
    expires REAL,
    budget_duration TEXT,
    budget_reset_at REAL,
    metadata TEXT NOT NULL,
    user_id TEXT,
    created_at REAL NOT NULL,
    last_active REAL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0
)
"""
_PENDING_SCHEMA = """
CREATE TABLE IF NOT EXISTS rxllm_pending_spend (
    request_id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    cost REAL NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    at REAL NOT NULL
)
"""


class SpendRecord(msgspec.Struct, frozen=True, array_like=True):
    """One request's spend, as recorded once wherever it was served."""

    request_id: str
    token: str
    cost: float
    prompt_tokens: int
    completion_tokens: int
    at: float


_decode_models = msgspec.json.Decoder(list[str]).decode
_decode_metadata = msgspec.json.Decoder(dict[str, Any]).decode


_encode_row = msgspec.json.Encoder().encode
_decode_row = msgspec.json.Decoder(_Row).decode


def _virtual_key(row: _Row) -> VirtualKey:
    return VirtualKey(
        token=row.token,
        key_name=row.key_name,
        key_alias=row.key_alias,
        models=tuple(_decode_models(row.models)),
        max_budget=row.max_budget,
        spend=row.spend,
        rpm_limit=row.rpm_limit,
        tpm_limit=row.tpm_limit,
        expires=row.expires,
        metadata=_decode_metadata(row.metadata),
        budget_duration=row.budget_duration,
        budget_reset_at=row.budget_reset_at,
        user_id=row.user_id,
        created_at=row.created_at,
    )


def _iso(epoch: float | None) -> str | None:
    """Epoch seconds as LiteLLM's JSON shows a datetime (``2026-01-31T12:00:00Z``)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _key_fields(row: _Row, now: float) -> dict[str, Any]:
    """A key's fields as LiteLLM names them (its token is the hash, never the key)."""
    expired = row.expires is not None and now >= row.expires
    return {
        "token": row.token,
        "key_name": row.key_name,
        "key_alias": row.key_alias,
        "spend": row.spend,
        "max_budget": row.max_budget,
        "expires": _iso(row.expires),
        "models": _decode_models(row.models),
        "user_id": row.user_id,
        "team_id": None,
        "metadata": _decode_metadata(row.metadata),
        "tpm_limit": row.tpm_limit,
        "rpm_limit": row.rpm_limit,
        "budget_duration": row.budget_duration,
        "budget_reset_at": _iso(row.budget_reset_at),
        "blocked": None,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.created_at),
        "last_active": _iso(row.last_active),
        "status": "expired" if expired else "active",
        # rxllm's own counters (LiteLLM keeps these in its spend logs)
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "requests": row.requests,
    }


# --- the store -------------------------------------------------------------------------------


class KeyStore:
    """Keys in one SQLite file, shared by every worker process that opens it.

    Calls are synchronous and short (tens of microseconds), made from the event loop; a lock
    makes one store safe to share between threads as well. ``clock`` (epoch seconds) is what
    expiry, creation and budget windows are measured by: tests pass their own.
    """

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = BUSY_TIMEOUT,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._clock = clock
        self._cache: OrderedDict[str, tuple[int, VirtualKey]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL never corrupts the file; a power cut (not a crash) may lose the
            # last spend updates. FULL would put an fsync on the event loop per request.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.execute(_PENDING_SCHEMA)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        """Close the file (the store is unusable afterwards)."""
        with self._lock:
            self._db.close()
            self._cache.clear()

    # management

    def generate(self, request: GenerateKey) -> dict[str, Any]:
        """Create a key; LiteLLM's ``/key/generate`` answer, the only place the plain key
        (``key``) is ever shown. Raises a 400 :class:`GatewayError` for a bad setting."""
        _check_settings(request)
        now = self._clock()
        duration = request.duration
        expires = None if duration is None else _after(now, parse_duration(duration), "duration")
        reset_at = None
        if request.budget_duration is not None:
            window = parse_duration(request.budget_duration, "budget_duration")
            reset_at = _after(now, window, "budget_duration")
        key = request.key if request.key is not None else KEY_PREFIX + secrets.token_urlsafe(32)
        row = _Row(
            id=0,
            token=hash_key(key),
            key_name=_key_name(key),
            key_alias=request.key_alias or None,
            models=msgspec.json.encode(request.models or []).decode(),
            max_budget=request.max_budget,
            spend=request.spend or 0.0,
            rpm_limit=request.rpm_limit,
            tpm_limit=request.tpm_limit,
            expires=expires,
            budget_duration=request.budget_duration,
            budget_reset_at=reset_at,
            metadata=msgspec.json.encode(request.metadata or {}).decode(),
            user_id=request.user_id,
            created_at=now,
            last_active=None,
            prompt_tokens=0,
            completion_tokens=0,
            requests=0,
        )
        values = msgspec.structs.astuple(row)[1:]
        marks = ", ".join("?" * len(values))
        insert = f"INSERT INTO rxllm_keys ({', '.join(_INSERTED)}) VALUES ({marks})"
        try:
            with self._lock:
                self._db.execute(insert, values)
        except sqlite3.IntegrityError as error:
            if "key_alias" in str(error):
                raise _bad_field(
                    "key_alias", f"key_alias {row.key_alias!r} already exists"
                ) from None
            raise _bad_field("key", "a key with this value already exists") from None
        fields = _key_fields(row, now)
        del fields["status"], fields["last_active"]
        return {"key": key, **fields, "token_id": row.token, "duration": duration}

    def info(self, key_or_hash: str) -> dict[str, Any] | None:
        """LiteLLM's ``info`` of a key (plain or hashed), its spend current; None if unknown."""
        token = _token_of(key_or_hash)
        now = self._clock()
        with self._lock:
            row = self._row(token)
            if row is not None and row.budget_reset_at is not None and row.budget_reset_at <= now:
                self._roll(token, row.created_at, row.budget_duration, row.budget_reset_at, now)
                row = self._row(token)
        return None if row is None else _key_fields(row, now)

    def list_keys(
        self, *, page: int = 1, size: int = 10, key_alias: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of keys (oldest first) and how many there are in all."""
        where, args = ("WHERE key_alias = ?", (key_alias,)) if key_alias is not None else ("", ())
        now = self._clock()
        with self._lock:
            (total,) = self._db.execute(f"SELECT COUNT(*) FROM rxllm_keys {where}", args).fetchone()
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM rxllm_keys {where} ORDER BY id LIMIT ? OFFSET ?",
                (*args, size, (page - 1) * size),
            ).fetchall()
        return [_key_fields(_Row(*row), now) for row in rows], int(total)

    def delete(self, keys: Iterable[str], *, aliases: Iterable[str] = ()) -> list[str]:
        """Delete keys (plain or hashed) and keys by alias; the ones that existed, as passed."""
        deleted = []
        with self._lock:
            for key in keys:
                token = _token_of(key)
                if self._db.execute("DELETE FROM rxllm_keys WHERE token = ?", (token,)).rowcount:
                    self._cache.pop(token, None)
                    deleted.append(key)
            by_alias = "DELETE FROM rxllm_keys WHERE key_alias = ?"
            deleted += [alias for alias in aliases if self._db.execute(by_alias, (alias,)).rowcount]
        return deleted

    # the request path

    def lookup(self, key: str) -> VirtualKey | None:
        """The key a client sent, with its spend read now; None if unknown or deleted.

        One indexed read of (row id, spend, window) per call; the rest comes from the cache
        while the row id matches, so a key deleted (or deleted and made again) by another
        worker is seen at once."""
        if not key.startswith(KEY_PREFIX):
            return None
        token = hash_key(key)
        with self._lock:
            head = self._db.execute(
                "SELECT id, spend, budget_reset_at FROM rxllm_keys WHERE token = ?", (token,)
            ).fetchone()
            if head is None:
                self._cache.pop(token, None)
                return None
            row_id, spend, reset_at = head
            cached = self._cache.get(token)
            if cached is None or cached[0] != row_id:
                row = self._row(token)
                if row is None:
                    return None
                cached = (row.id, msgspec.structs.replace(_virtual_key(row), spend=0.0))
                self._remember(token, cached)
                spend, reset_at = row.spend, row.budget_reset_at  # the row just read wins
            else:
                self._cache.move_to_end(token)
            fixed = cached[1]
            now = self._clock()
            if reset_at is not None and reset_at <= now:
                spend, reset_at = self._roll(
                    token, fixed.created_at, fixed.budget_duration, reset_at, now
                )
        return msgspec.structs.replace(fixed, spend=spend, budget_reset_at=reset_at)

    def add_spend(
        self, token_hash: str, cost: float, prompt_tokens: int, completion_tokens: int
    ) -> None:
        """Add one request's cost and tokens to a key (a deleted key is ignored)."""
        if not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"cost must be a finite, non-negative number, not {cost!r}")
        now = self._clock()
        add = (
            "UPDATE rxllm_keys SET spend = spend + ?, prompt_tokens = prompt_tokens + ?, "
            "completion_tokens = completion_tokens + ?, requests = requests + 1, "
            "last_active = ? WHERE token = ? AND (budget_reset_at IS NULL OR budget_reset_at > ?)"
        )
        values = (cost, prompt_tokens, completion_tokens, now, token_hash, now)
        with self._lock:
            if self._db.execute(add, values).rowcount:
                return
            row = self._row(token_hash)
            if row is None:
                return
            if row.budget_reset_at is not None:
                self._roll(
                    token_hash, row.created_at, row.budget_duration, row.budget_reset_at, now
                )
            self._db.execute(add, values)

    # sharing (rxllm.gateway._shared): a key's row travels between instances; spend that
    # could not be shared yet waits here, on disk

    def exported(self, token: str) -> bytes | None:
        """A key's settings (not its spend or counters) as bytes another instance imports."""
        with self._lock:
            row = self._row(token)
        if row is None:
            return None
        return _encode_row(
            msgspec.structs.replace(
                row, id=0, spend=0.0, prompt_tokens=0, completion_tokens=0, requests=0
            )
        )

    def imported(self, data: bytes) -> None:
        """Add a key another instance created (nothing happens if it is already here)."""
        row = _decode_row(data)
        values = msgspec.structs.astuple(row)[1:]
        marks = ", ".join("?" * len(values))
        insert = f"INSERT OR IGNORE INTO rxllm_keys ({', '.join(_INSERTED)}) VALUES ({marks})"
        with self._lock:
            self._db.execute(insert, values)

    def forget(self, tokens: Iterable[str]) -> None:
        """Remove keys another instance deleted."""
        with self._lock:
            for token in tokens:
                self._db.execute("DELETE FROM rxllm_keys WHERE token = ?", (token,))
                self._cache.pop(token, None)

    def hold(self, record: SpendRecord) -> None:
        """Keep a spend record until it can be shared (it survives a restart)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO rxllm_pending_spend VALUES (?, ?, ?, ?, ?, ?)",
                msgspec.structs.astuple(record),
            )

    def held(self, limit: int = 1000) -> list[SpendRecord]:
        """The oldest spend records not shared yet."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM rxllm_pending_spend ORDER BY at LIMIT ?", (limit,)
            ).fetchall()
        return [SpendRecord(*row) for row in rows]

    def release(self, request_ids: Iterable[str]) -> None:
        """Drop spend records now shared."""
        with self._lock:
            self._db.executemany(
                "DELETE FROM rxllm_pending_spend WHERE request_id = ?",
                [(request_id,) for request_id in request_ids],
            )

    # inside

    def _row(self, token: str) -> _Row | None:
        found = self._db.execute(
            f"SELECT {_COLUMNS} FROM rxllm_keys WHERE token = ?", (token,)
        ).fetchone()
        return None if found is None else _Row(*found)

    def _remember(self, token: str, entry: tuple[int, VirtualKey]) -> None:
        self._cache[token] = entry
        self._cache.move_to_end(token)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _roll(
        self,
        token: str,
        anchor: float,
        budget_duration: str | None,
        reset_at: float,
        now: float,
    ) -> tuple[float, float | None]:
        """Start a new budget window (spend 0) if ``reset_at`` has passed; the (spend, next
        reset) then. Compare-and-set on ``reset_at``: of several workers, one resets."""
        if budget_duration is not None and reset_at <= now:
            next_reset = _next_boundary(anchor, parse_duration(budget_duration), now)
            self._db.execute(
                "UPDATE rxllm_keys SET spend = 0, budget_reset_at = ? "
                "WHERE token = ? AND budget_reset_at = ?",
                (next_reset, token, reset_at),
            )
        found = self._db.execute(
            "SELECT spend, budget_reset_at FROM rxllm_keys WHERE token = ?", (token,)
        ).fetchone()
        return (0.0, None) if found is None else (float(found[0]), found[1])


def _check_settings(request: GenerateKey) -> None:
    """A 400 for a setting LiteLLM has and this gateway does not enforce, or a bad custom key."""
    for name in _UNSUPPORTED:
        if getattr(request, name) not in (None, False, "", [], {}):
            raise _bad_field(
                name, f"{name} is a LiteLLM key setting that rxllm's gateway does not enforce"
            )
    key = request.key
    if key is not None and not key.startswith(KEY_PREFIX):
        raise _bad_field("key", f"Invalid key format: a key must start with {KEY_PREFIX!r}")
    if key is not None and len(key) < MIN_CUSTOM_KEY_LENGTH:
        raise _bad_field(
            "key", f"Invalid key format: a key must be at least {MIN_CUSTOM_KEY_LENGTH} long"
        )


# --- rate limits -----------------------------------------------------------------------------


class KeyLimits:
    """Each key's requests and tokens in the last minute, in this process (sliding windows).

    A request is counted when admitted; never more than ``rpm_limit`` are admitted in any 60 s.
    Tokens are known only when a response ends: a request is admitted while the tokens of the
    last 60 s are under ``tpm_limit``, so the one that crosses it finishes. For the event
    loop's thread only.
    """

    def __init__(self) -> None:
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[str, deque[tuple[float, int]]] = {}
        self._token_sums: dict[str, int] = {}

    def admit(self, key: VirtualKey, now: float) -> GatewayError | None:
        """Count a request now, or say why not (a 429 with ``retry_after``)."""
        if key.tpm_limit is not None:
            used = self._tokens_since(key.token, now - WINDOW)
            if used >= key.tpm_limit:
                wait = self._tokens_wait(key.token, key.tpm_limit, now)
                return _rate_limited(key, kind="tokens", limit=key.tpm_limit, used=used, wait=wait)
        if key.rpm_limit is not None:
            times = self._requests.setdefault(key.token, deque())
            while times and times[0] <= now - WINDOW:
                times.popleft()
            if len(times) >= key.rpm_limit:
                wait = times[0] + WINDOW - now if times else WINDOW
                return _rate_limited(
                    key, kind="requests", limit=key.rpm_limit, used=len(times), wait=wait
                )
            times.append(now)
        return None

    def add_tokens(self, key: VirtualKey, tokens: int, now: float) -> None:
        """Count a finished request's tokens (prompt and completion) against ``tpm_limit``."""
        if key.tpm_limit is None or tokens <= 0:
            return
        self._tokens.setdefault(key.token, deque()).append((now, tokens))
        self._token_sums[key.token] = self._token_sums.get(key.token, 0) + tokens

    def _tokens_since(self, token: str, since: float) -> int:
        entries = self._tokens.get(token)
        if not entries:
            return 0
        total = self._token_sums[token]
        while entries and entries[0][0] <= since:
            total -= entries.popleft()[1]
        self._token_sums[token] = total
        return total

    def _tokens_wait(self, token: str, limit: int, now: float) -> float:
        """Seconds until the tokens still in the window drop under ``limit``."""
        total = self._token_sums[token]
        for at, tokens in self._tokens[token]:
            total -= tokens
            if total < limit:
                return at + WINDOW - now
        return WINDOW


def _rate_limited(
    key: VirtualKey, *, kind: str, limit: int, used: int, wait: float
) -> GatewayError:
    """OpenAI's words for a rate limit (``kind``: ``requests`` or ``tokens``)."""
    unit = "RPM" if kind == "requests" else "TPM"
    wait = min(max(wait, 0.0), WINDOW)  # float error must not ask for 60.000000000001 s
    return GatewayError(
        429,
        f"Rate limit reached for key {key.key_alias or key.key_name} on {kind} per min "
        f"({unit}): Limit {limit}, Used {used}. Please try again in {math.ceil(wait)}s.",
        openai_type=kind,
        code="rate_limit_exceeded",
        retry_after=wait,
    )


# --- the client's key ------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by its lower-case name, from aiohttp's headers or a plain dict."""
    value = headers.get(name)
    if value is None and not isinstance(headers, (CIMultiDict, CIMultiDictProxy)):
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def unauthenticated(sent: str | None) -> GatewayError:
    """The 401 for a request without a key (``sent`` None) or with one no store knows (in
    LiteLLM's words, with OpenAI's ``invalid_api_key`` code)."""
    if sent is None:
        message = "Authentication Error, No api key passed in."
    else:
        message = "Authentication Error, Invalid proxy server token passed."
    return GatewayError(401, message, code="invalid_api_key")


def authenticate(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: ``Authorization: Bearer ...`` (OpenAI's SDK), ``x-api-key``
    (Anthropic's) or ``api-key`` (Azure OpenAI's); None if none."""
    authorization = _header(headers, "authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    for name in ("x-api-key", "api-key"):
        sent = _header(headers, name)
        if sent and sent.strip():
            return sent.strip()
    return None


# --- the management endpoints ----------------------------------------------------------------


def _bad_field(field: str | None, message: str) -> GatewayError:
    return GatewayError(400, message, param=field)


_AT_FIELD = re.compile(r"at `\$\.([A-Za-z_]\w*)")


def _decode(body: bytes, kind: type[Any]) -> Any:
    """A request body as ``kind``; a 400 naming the field for anything else."""
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.ValidationError as error:
        found = _AT_FIELD.search(str(error))
        field = found.group(1) if found else None
        raise _bad_field(field, f"Invalid request body: {error}") from None
    except msgspec.DecodeError as error:
        raise _bad_field(None, f"The request body is not valid JSON: {error}") from None


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _bad_field(name, f"{name} must be a whole number from {low} to {high}")
    return value


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )


def _error_response(error: BaseException) -> web.Response:
    """OpenAI's error body for ``error`` (LiteLLM's management endpoints answer in it)."""
    wire = describe(error)
    response = _json(openai_error_body(wire), wire.status)
    if wire.retry_after is not None:
        response.headers["Retry-After"] = str(math.ceil(wire.retry_after))
    return response


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _admin_only(master_key: str, handler: Handler) -> Handler:
    """``handler`` behind the master key, its refusals and failures as OpenAI error bodies."""
    expected = master_key.encode()

    async def guarded(request: web.Request) -> web.Response:
        try:
            sent = authenticate(request.headers)
            if sent is None:
                raise unauthenticated(None)
            if not hmac.compare_digest(sent.encode(), expected):
                raise GatewayError(
                    401,
                    "Authentication Error, the key management endpoints need the master key.",
                    code="invalid_api_key",
                )
            return await handler(request)
        except GatewayError as error:
            return _error_response(error)
        except sqlite3.Error:
            log.exception("the key store failed on %s %s", request.method, request.path)
            busy = GatewayError(
                503, "The key store is busy; try again.", openai_type="server_error", retry_after=1
            )
            return _error_response(busy)
        except Exception as error:
            log.exception("%s %s failed", request.method, request.path)
            return _error_response(error)

    return guarded


class Sharing(Protocol):
    """What the endpoints tell the other instances (``rxllm.gateway._shared.SharedKeys``)."""

    async def published(self, token: str) -> None: ...

    async def fetched(self, token: str) -> bool: ...

    async def deleted(self, tokens: list[str]) -> None: ...

    async def overlay(self, info: dict[str, Any]) -> dict[str, Any]: ...


def _tokens_of_aliases(store: KeyStore, aliases: Iterable[str]) -> list[str]:
    tokens = []
    for alias in aliases:
        keys, _ = store.list_keys(size=1, key_alias=alias)
        tokens += [key["token"] for key in keys]
    return tokens


def key_routes(
    store: KeyStore, master_key: str, sharing: Sharing | None = None
) -> list[web.RouteDef]:
    """LiteLLM's key management endpoints over ``store``, for the master key only; with
    ``sharing``, keys made or deleted here are made or deleted for every instance, and
    ``/key/info`` shows the spend of all of them."""

    async def generate(request: web.Request) -> web.Response:
        made = store.generate(_decode(await request.read(), GenerateKey))
        if sharing is not None:
            await sharing.published(made["token"])
        return _json(made)

    async def info(request: web.Request) -> web.Response:
        key = request.query.get("key")
        if not key:
            raise _bad_field("key", "No key passed in. Pass ?key= (the key or its hash).")
        found = store.info(key)
        if found is None and sharing is not None and await sharing.fetched(_token_of(key)):
            found = store.info(key)  # made by another instance
        if found is None:
            raise GatewayError(
                404, "Key not found in database", openai_type="not_found_error", param="key"
            )
        if sharing is not None:
            found = await sharing.overlay(found)
        return _json({"key": key, "info": found})

    async def delete(request: web.Request) -> web.Response:
        body: DeleteKeys = _decode(await request.read(), DeleteKeys)
        if not body.keys and not body.key_aliases:
            raise _bad_field("keys", "At least one of 'keys' or 'key_aliases' must be provided.")
        tokens = _tokens_of_aliases(store, body.key_aliases or ())
        deleted = store.delete(body.keys or (), aliases=body.key_aliases or ())
        if sharing is not None:
            await sharing.deleted([_token_of(key) for key in body.keys or ()] + tokens)
        if not deleted:
            raise GatewayError(404, "No keys found", openai_type="not_found_error", param="keys")
        return _json({"deleted_keys": deleted})

    async def listing(request: web.Request) -> web.Response:
        page = _query_int(request, "page", 1, 1, 1_000_000)
        size = _query_int(request, "size", 10, 1, 100)
        full = request.query.get("return_full_object", "false").lower() == "true"
        keys, total = store.list_keys(
            page=page, size=size, key_alias=request.query.get("key_alias")
        )
        return _json(
            {
                "keys": keys if full else [key["token"] for key in keys],
                "total_count": total,
                "current_page": page,
                "total_pages": -(-total // size),
            }
        )

    return [
        web.post("/key/generate", _admin_only(master_key, generate)),
        web.get("/key/info", _admin_only(master_key, info)),
        web.post("/key/delete", _admin_only(master_key, delete)),
        web.get("/key/list", _admin_only(master_key, listing)),
    ]
