"""``rxllm providers``: the registry as a table (or JSON), read generically from its rows.

Capability columns are every yes/no field of ``ProviderInfo`` (but ``key_required``), so a
provider or a capability added to the registry shows up here with no change. Only the registry
is imported: no provider module, no aiohttp. Providers that plugins registered (entry points,
see ``rxllm.providers.ENTRY_POINT_GROUP``) are listed too, marked with the package providing them.
"""

from __future__ import annotations

from typing import Any, TextIO

import msgspec

from . import providers

__all__ = ["capability_names", "print_providers", "provider_records", "provider_rows"]


def capability_names() -> list[str]:
    return [
        field.name
        for field in msgspec.structs.fields(providers.ProviderInfo)
        if field.type is bool and field.name != "key_required"
    ]


def provider_records() -> list[dict[str, Any]]:
    """One dict per provider: capabilities, key variables and whether one is set, base URL,
    and the plugin distribution that registered it (None for a built-in provider)."""
    records = []
    plugins = providers.plugin_providers()
    for name in providers.list_providers():
        info = providers.provider_info(name)
        records.append(
            {
                "name": name,
                "plugin": plugins.get(name),
                **{cap: getattr(info, cap) for cap in capability_names()},
                "key_required": info.key_required,
                "env_keys": list(info.env_keys),
                "key_set": providers.api_key_for(info, None) is not None,
                "api_base": info.default_api_base,
                "env_api_base": _names(info.env_api_base),
                "default_model": info.default_model,
            }
        )
    return records


def _names(variables: str | tuple[str, ...] | None) -> list[str]:
    if variables is None:
        return []
    return [variables] if isinstance(variables, str) else list(variables)


def _key_cell(record: dict[str, Any]) -> str:
    names = " or ".join(record["env_keys"])
    state = "set" if record["key_set"] else "not set"
    if not record["key_required"]:
        return f"optional: {names} ({state})" if names else "not needed"
    return f"{names or 'api_key='} ({state})"


def _base_cell(record: dict[str, Any]) -> str:
    variables = " / ".join("$" + name for name in record["env_api_base"])
    if not record["api_base"]:
        return f"set {variables} or --api-base" if variables else "--api-base"
    return f"{record['api_base']} (or {variables})" if variables else record["api_base"]


def provider_rows() -> list[list[str]]:
    """A header, then one row per provider (yes / - for each capability)."""
    caps = capability_names()
    header = ["provider", *caps, "API key", "default model", "api_base"]
    return [header] + [
        [
            record["name"] + (f" (plugin: {record['plugin']})" if record["plugin"] else ""),
            *("yes" if record[cap] else "-" for cap in caps),
            _key_cell(record),
            record["default_model"] or "-",
            _base_cell(record),
        ]
        for record in provider_records()
    ]


def print_providers(out: TextIO, *, as_json: bool) -> None:
    if as_json:
        out.write(msgspec.json.encode(provider_records()).decode() + "\n")
        return
    rows = provider_rows()
    if out.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            table = Table(*rows[0], header_style="bold")
            for row in rows[1:]:
                table.add_row(*row)
            Console(file=out).print(table)
            return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
        )
