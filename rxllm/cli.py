"""The ``rxllm`` command line: ``chat``, ``providers``, the offline ``demo`` and ``serve``.

Only ``argparse`` is imported up front, so ``rxllm --help`` answers at once; aiohttp, reactivex
and rich are imported when a command needs them.

Exit codes: 0 done, 1 the provider or the stream failed (one line on stderr, naming the typed
error), 2 a usage or configuration problem (a missing API key, an unknown provider), 130
cancelled with Ctrl-C (the streams are disposed, so their connections close).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141
EXIT_CANCELLED = 130


class UsageError(Exception):
    """A problem with the command line or the setup: reported in one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxllm", description="Stream answers from LLM providers, one API for all."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    chat = commands.add_parser(
        "chat",
        help="ask a question and stream the answer",
        description=(
            "Ask a question and stream the answer live. API keys come from the provider's "
            "environment variable (OPENAI_API_KEY, ...); see `rxllm providers`."
        ),
        epilog=(
            'examples:\n  rxllm chat "Explain SSE in one line" -m openai/gpt-4o-mini\n'
            '  rxllm chat "Hi" -m openai/llama3 --api-base http://localhost:8000/v1\n'
            '  rxllm chat "Hi" --compare openai/gpt-4o-mini openai/gpt-4o\n'
            '  rxllm chat "Hi" -m mock/any -p mock_delay=0.05   # offline'
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument("question", nargs="?", help="the question (default: read from stdin)")
    chat.add_argument(
        "-m",
        "--model",
        help="provider/model (default: $RXLLM_MODEL, else the default model of the first "
        "provider whose API key is set); a provider alone means its default model",
    )
    chat.add_argument("-s", "--system", help="a system prompt")
    chat.add_argument(
        "--compare",
        nargs="+",
        metavar="MODEL",
        help="ask several provider/models at once (and the -m model, if given): live "
        "side-by-side columns, then time to first token, tokens/s and cost for each (put the "
        "question first); a -p setting only some of them take is left out for the others",
    )
    chat.add_argument("--api-base", help="base URL of the API (a local or compatible server)")
    chat.add_argument(
        "--api-key",
        help="API key (discouraged: it shows in shell history and `ps`; set the provider's "
        "environment variable instead)",
    )
    chat.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a request parameter or provider option, e.g. -p temperature=0.2 "
        "(VALUE is read as JSON when it parses, else as text); repeatable",
    )
    chat.add_argument("--timeout", type=float, help="seconds to connect and between chunks")
    chat.add_argument("--json", action="store_true", help="print the chunks as JSON lines")
    chat.add_argument(
        "--stats", action="store_true", help="after the answer, print its timings and cost"
    )
    chat.add_argument(
        "--plain", action="store_true", help="plain text even on a terminal (no rich rendering)"
    )

    listing = commands.add_parser(
        "providers", help="list the providers, their capabilities and API key variables"
    )
    listing.add_argument("--json", action="store_true", help="print them as JSON")

    demo = commands.add_parser(
        "demo", help="offline demo: a recorded stream replayed over loopback HTTP"
    )
    demo.add_argument(
        "--pace", type=float, default=0.03, help="seconds between replayed events (default 0.03)"
    )

    serve = commands.add_parser(
        "serve",
        help="run the gateway: OpenAI- and Anthropic-compatible endpoints over your config",
        description=(
            "Run an OpenAI- and Anthropic-compatible gateway (/v1/chat/completions, "
            "/v1/messages, /v1/embeddings, /v1/models, /metrics) on the router. The config "
            "file is LiteLLM proxy's YAML (model_list, router_settings, general_settings). "
            "SIGTERM drains open streams. Needs the gateway extra (pip install -e '.[gateway]' "
            "in the clone)."
        ),
        epilog=(
            "examples:\n  rxllm serve --config config.yaml --port 4000 --workers 2\n"
            "  rxllm serve --mock   # offline: every model answers through the mock provider"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="the YAML config file")
    source.add_argument(
        "--mock",
        action="store_true",
        help="no config: every model name (mock/<anything> or any other) answers through "
        "the mock provider, offline",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=4000, help="port (4000; 0 picks a free one)")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes serving the one port (default 1)"
    )
    serve.add_argument(
        "--redis",
        metavar="URL",
        help="share limits, cooldowns, keys' spend and the cache with other instances on this "
        "Redis (overrides router_settings.redis_url), e.g. redis://127.0.0.1:6379/0",
    )
    serve.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the event loop: uvloop (faster; installed with the gateway extra where it "
        "builds) or asyncio's; auto: uvloop when installed",
    )
    serve.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"rxllm {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "demo":
            from ._demo import run

            return run(pace=args.pace)
        if args.command == "providers":
            from ._cli_providers import print_providers

            print_providers(sys.stdout, as_json=args.json)
            return 0
        if args.command == "serve":
            from ._cli_serve import serve

            return serve(args, sys.argv[1:] if argv is None else list(argv))
        return _chat(args)
    except UsageError as error:
        _fail(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _fail("cancelled")
        return EXIT_CANCELLED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE


def _fail(message: str) -> None:
    print(f"rxllm: {' '.join(message.split())}", file=sys.stderr, flush=True)


def _quiet_stdout() -> None:
    """stdout's reader went away (``| head``): send what is left to /dev/null, quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# --- chat --------------------------------------------------------------------------------------


def _params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"-p takes NAME=VALUE, not {pair!r}")
        try:
            params[name] = json.loads(text)
        except ValueError:
            params[name] = text
    return params


def _question(args: argparse.Namespace) -> str:
    if args.question not in (None, "-"):
        return str(args.question)
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError('ask a question: rxllm chat "your question" (or pipe it in)')
    text = sys.stdin.read().strip()
    if not text:
        raise UsageError("the question read from stdin is empty")
    return text


def _default_model() -> str:
    """``$RXLLM_MODEL``, else the default model of the first provider whose key is set."""
    from . import providers

    chosen = os.environ.get("RXLLM_MODEL")
    if chosen:
        return chosen
    for name in providers.list_providers():
        info = providers.provider_info(name)
        if info.env_keys and info.default_model and providers.api_key_for(info, None):
            return f"{name}/{info.default_model}"
    raise UsageError(
        "name a model with -m provider/model (or set RXLLM_MODEL): no provider's API key is "
        "set (see `rxllm providers`)"
    )


def _example_model() -> str:
    from . import providers

    for name in providers.list_providers():
        default = providers.provider_info(name).default_model
        if default:
            return f"{name}/{default}"
    return "provider/model"


def _suggestion(model: str) -> str:
    """``provider/model`` for each provider whose model names fit ``model`` (when several
    claim it), else an example of the form."""
    from . import providers

    candidates = providers.infer_provider(model)
    return " or ".join(f"{name}/{model}" for name in candidates) or _example_model()


def _resolve_model(model: str, api_key: str | None) -> str:
    """``provider/model`` checked against the registry, with the key found (before any I/O)."""
    from . import providers
    from .errors import ConfigurationError

    if model in providers.list_providers():
        info = providers.provider_info(model)
        if not info.default_model:
            raise UsageError(f"{model} has no default model: name one, e.g. {model}/my-model")
        model = f"{model}/{info.default_model}"
    try:
        name, _ = providers.split_model(None, model)
    except ConfigurationError:
        known = ", ".join(providers.list_providers())
        raise UsageError(
            f"cannot tell the provider of {model!r}: write provider/model, "
            f"e.g. {_suggestion(model)} (providers: {known})"
        ) from None
    info = providers.provider_info(name)
    if info.key_required and providers.api_key_for(info, api_key) is None:
        variables = " or ".join(info.env_keys) or "--api-key"
        raise UsageError(f"no API key for {name}: set {variables} (or pass --api-key)")
    return model


def _labels(models: list[str]) -> list[str]:
    """Column names: the model strings, made unique."""
    labels: list[str] = []
    for model in models:
        label, n = model, 1
        while label in labels:
            n += 1
            label = f"{model}#{n}"
        labels.append(label)
    return labels


def _refused(model: str, params: dict[str, Any]) -> set[str]:
    """The ``-p`` names the provider of ``model`` (a checked model string) does not take."""
    from . import providers
    from .errors import UnsupportedParamsError

    spec = providers.get_provider(providers.split_model(None, model)[0])
    refused = set()
    for name, value in params.items():
        if name in spec.option_names:
            continue
        try:
            spec.check_params({name: value}, False)
        except UnsupportedParamsError:
            refused.add(name)
    return refused


def _params_per_model(models: list[str], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model's ``-p`` settings. Comparing models of several providers, a setting only some
    of them take is left out for the others, with a note; one none takes stays, so its
    error still shows (a misspelt name is not dropped in silence)."""
    from . import providers

    refused = [_refused(model, params) for model in models] if len(models) > 1 else [set()]
    nobody = set.intersection(*refused)
    kept = []
    for model, names in zip(models, refused, strict=True):
        left_out = sorted(names - nobody)
        if left_out:
            provider = providers.split_model(None, model)[0]
            print(
                f"rxllm: {model}: leaving out -p {', '.join(left_out)} ({provider} does not "
                "take it)",
                file=sys.stderr,
                flush=True,
            )
        kept.append({k: v for k, v in params.items() if k not in left_out})
    return kept


def _chat(args: argparse.Namespace) -> int:
    question = _question(args)
    models = args.compare or [args.model or _default_model()]
    if args.compare and args.model:  # -m A --compare B C compares A, B and C
        models = [args.model, *args.compare]
    params = _params(args.param)
    resolved = [_resolve_model(model, args.api_key) for model in models]
    per_model = _params_per_model(resolved, params)

    import rxllm
    from rxllm.errors import BadRequestError, ConfigurationError

    from . import _cli_render

    messages = [{"role": "user", "content": question}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    options: dict[str, Any] = {"api_key": args.api_key, "api_base": args.api_base}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    try:
        streams = {
            label: rxllm.completion(
                model=model, messages=messages, stream=True, **options, **model_params
            )
            for label, model, model_params in zip(_labels(models), resolved, per_model, strict=True)
        }
    except (ConfigurationError, BadRequestError) as error:
        raise UsageError(str(error)) from None
    compare = bool(args.compare)
    view = _cli_render.choose_view(
        sys.stdout, labels=list(streams), compare=compare, as_json=args.json, plain=args.plain
    )
    if compare:
        return _cli_render.run_compare(streams, view)
    return _cli_render.run_single(streams, view, stats=args.stats)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
