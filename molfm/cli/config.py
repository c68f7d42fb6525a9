"""``--config FILE.yaml`` support shared by every command: the file fills what flags don't."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml

__all__ = ["merge_config", "save_resolved_config"]


def merge_config(ctx: typer.Context, config: Path | None, params: dict[str, Any]) -> dict[str, Any]:
    """Return ``params`` with values from the YAML file for every flag left at its default.

    Keys may be written kebab-case (as the flags) or snake_case. Unknown keys are an error
    naming the valid ones, so a typo never silently does nothing.
    """
    if config is None:
        return params
    if not config.exists():
        raise typer.BadParameter(f"config file {config} does not exist", param_hint="--config")
    loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise typer.BadParameter(f"{config} must hold a mapping of option: value")
    merged = dict(params)
    for raw_key, value in loaded.items():
        key = str(raw_key).replace("-", "_")
        if key not in params or key == "config":
            valid = sorted(k.replace("_", "-") for k in params if k != "config")
            raise typer.BadParameter(f"unknown key {raw_key!r} in {config}; valid keys: {valid}")
        source = ctx.get_parameter_source(key)
        # by name: typer may ship its own click, whose enum is not click.core's
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            merged[key] = value
    return merged


def save_resolved_config(params: dict[str, Any], directory: Path) -> Path:
    """Write the fully resolved options as ``resolved_config.yaml`` into an output directory."""
    from molfm.atomic import atomic_write_text

    clean = json.loads(json.dumps(params, default=str))  # Paths/enums to plain strings
    return atomic_write_text(
        directory / "resolved_config.yaml", yaml.safe_dump(clean, sort_keys=True)
    )
