"""The router's stream when the request uses the router's response cache (``rxllm.cache``).

A hit replays the cached chunks and never runs the execution: no deployment is sent to, no
attempt is reported, no rpm or tpm is counted (``attempts`` stays empty). A miss runs it as a
plain :class:`~rxllm.router.RouterStream` does - retries and fallbacks until the first chunk -
and the answer is stored when the stream completes.
"""

from __future__ import annotations

from ..cache import CacheEntry, CacheUse, CachingStreamMixin
from ._execution import Execution, Pick
from ._stream import RouterStream

__all__ = ["CachingRouterStream"]


class CachingRouterStream(CachingStreamMixin, RouterStream):
    """A :class:`~rxllm.router.RouterStream` answering from the router's cache when it can
    (``cache_hit`` says whether it does; None until the lookup ran)."""

    def __init__(
        self,
        execution: Execution,
        first: Pick,
        *,
        use: CacheUse,
        entry: CacheEntry | None = None,
        looked_up: bool = False,
        replay: bool = True,
    ) -> None:
        super().__init__(execution, first, replay=replay)
        self._init_caching(use, entry, looked_up=looked_up)

    def __repr__(self) -> str:
        hit = {True: "hit", False: "miss", None: "not looked up"}[self.cache_hit]
        return f"{super().__repr__()[:-1]}, cache={hit})"
