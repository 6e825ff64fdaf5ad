"""``rxllm serve``: load the config (every mistake reported before anything listens), bind the
port, and run one worker here or supervise ``--workers N``."""

from __future__ import annotations

import argparse
import socket
import sys
import warnings
from collections.abc import Sequence

import msgspec

from .cli import UsageError


def _say(message: str) -> None:
    print(f"rxllm serve: {message}", file=sys.stderr, flush=True)


def serve(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """The command; ``argv`` is the command line, passed on to worker processes."""
    from .errors import ConfigurationError

    try:
        from .gateway._config import ConfigWarning, load_config, mock_config
        from .gateway._serve import bind, run_worker, supervise
    except ImportError as exc:
        raise UsageError(
            f"rxllm serve needs the gateway extra ({exc.name} is missing): "
            "pip install -e '.[gateway]' in the clone"
        ) from None
    worker = args.worker_fd is not None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConfigWarning)
            config = mock_config() if args.mock else load_config(args.config)
    except ConfigurationError as exc:
        raise UsageError(f"{args.config}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read the config file: {exc}") from None
    if args.redis:
        config = msgspec.structs.replace(config, redis_url=args.redis)
    if worker:
        run_worker(config, socket.socket(fileno=args.worker_fd), loop=args.loop)
        return 0
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")
    for warning in caught:  # the one warning naming what rxllm ignores, from the parent only
        _say(str(warning.message))
    if not config.general.master_key:
        _say("no master_key in general_settings: the gateway is open to anyone who can reach it")
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    _say(f"listening on http://{shown}:{port}{workers} (models: {_models(config)})")
    if args.workers == 1:
        run_worker(config, sock, loop=args.loop)
        return 0
    return supervise(argv, sock, args.workers, config.general.drain_seconds, _say)


def _models(config: object) -> str:
    names = sorted({entry.model_name for entry in getattr(config, "models", ())})
    return ", ".join(names) if names else "none"
