"""Commands derived from run config dataclasses: a flag per declared field, nothing retyped.

:func:`config_command` turns a config class (fields declared with
:func:`molfm.engine.options.option`) and a short body into a typer command. The builder writes
the typer signature from the fields (name, type, default, help, range, choices, paths), adds
``--config FILE.yaml`` (the file fills what the flags leave at their defaults; flags win), and
hands the body a config instance::

    @config_command(app, "gp-molformer", LMTrainConfig)
    def gp_molformer(cfg: LMTrainConfig, run: RunContext) -> None:
        model_dir = train_causal_lm(cfg, callbacks=run.callbacks())

The body runs inside :func:`molfm.cli.errors.user_errors`: a user error is one line and exit
code 1, and outputs it created are removed again (a training run keeps its directory once
training starts, :meth:`RunContext.callbacks`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import typer
import yaml

from molfm.cli.config import save_resolved_config
from molfm.cli.errors import CreatedOutputs, user_errors
from molfm.cli.options import config_option, merge_typed_config
from molfm.engine.options import Option, RunOptions, options_of
from molfm.options import StreamOptions

__all__ = ["RunContext", "config_command", "typer_parameters", "config_from"]

_ENUMS: dict[tuple[str, ...], type[StrEnum]] = {}


def _choice_enum(name: str, choices: tuple[str, ...]) -> type[StrEnum]:
    """One StrEnum per set of choices: typer lists and checks them like any enum flag."""
    if choices not in _ENUMS:
        _ENUMS[choices] = StrEnum(name.title().replace("_", ""), {c: c for c in choices})
    return _ENUMS[choices]


def _optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not NoneType]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _check_positive(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise typer.BadParameter(f"{value} is not > 0.")
    return value


def _check_open_closed(name: str, high: float) -> Callable[[float | None], float | None]:
    """``positive`` with a ``max``: one check of ``0 < x <= max``, named by the field's last
    word (``top_p`` reads ``0 < p <= 1``)."""
    symbol = name.rsplit("_", 1)[-1]
    bound = int(high) if float(high).is_integer() else high

    def check(value: float | None) -> float | None:
        if value is not None and not 0 < value <= high:
            raise typer.BadParameter(f"{value} is not in the range 0 < {symbol} <= {bound}.")
        return value

    return check


def _flag_type(name: str, opt: Option, tp: Any) -> Any:
    base, optional = _optional(opt.cli_type or tp)
    if opt.choices is not None:
        base = _choice_enum(name, opt.choices)
        if get_origin(tp) is list or get_origin(_optional(tp)[0]) is list:
            base = list[base]
    elif opt.path is not None:
        base = Path
    return base | None if optional else base


def typer_parameters(
    config_cls: type,
) -> list[inspect.Parameter]:
    """One keyword parameter with a ``typer.Option`` (or ``typer.Argument``) per CLI field: the
    command's own options first, then the shared run options (so ``--help`` leads with what is
    particular to the command)."""
    shared = {f.name for f in dataclasses.fields(RunOptions)}
    shared |= {f.name for f in dataclasses.fields(StreamOptions)}  # where a command runs
    params = []
    fields = sorted(options_of(config_cls), key=lambda item: item[0].name in shared)
    for f, opt, tp in fields:
        if not opt.cli:
            continue
        flag_type = _flag_type(f.name, opt, tp)
        if f.default is not dataclasses.MISSING and not opt.required:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING and not opt.required:
            default = f.default_factory() or None
        else:  # required: given as a flag or in --config, checked once both are merged
            default = None if not opt.argument else ...
        if opt.choices is not None and default not in (..., None):
            enum = _choice_enum(f.name, opt.choices)
            default = [enum(d) for d in default] if isinstance(default, list) else enum(default)
        if opt.path is not None and isinstance(default, str):
            default = Path(default)
        kwargs: dict[str, Any] = {"help": opt.help}
        if default is None and _required(f, opt):
            kwargs["help"] = f"{opt.help} [required: here or in --config]"
        if opt.min is not None:
            kwargs["min"] = opt.min
        if opt.max is not None:
            kwargs["max"] = opt.max
        if opt.positive:
            kwargs["callback"] = _check_positive  # typer's Option has no open lower bound
        if opt.positive and opt.max is not None:  # one message for the whole range
            del kwargs["max"]
            kwargs["callback"] = _check_open_closed(f.name, opt.max)
        if opt.path == "file":
            kwargs["dir_okay"] = False
        elif opt.path == "dir":
            kwargs["file_okay"] = False
        if opt.exists:
            kwargs["exists"] = True
        if opt.envvar:
            kwargs["envvar"] = opt.envvar
        if opt.argument:
            info = typer.Argument(default, **kwargs)
        else:
            info = typer.Option(default, *opt.flags, **kwargs)  # no flags: --name (--no-name)
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=flag_type
            )
        )
    return params


def _required(f: dataclasses.Field, opt: Option) -> bool:
    no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    return opt.cli and not opt.argument and (opt.required or no_default)


def _check_required(ctx: typer.Context, config_cls: type, params: dict[str, Any]) -> None:
    """A required option must come from a flag or from --config (the parser cannot tell)."""
    from typer._click.exceptions import UsageError  # typer bundles its own click

    for f, opt, _ in options_of(config_cls):
        if _required(f, opt) and params.get(f.name) is None:
            raise UsageError(f"Missing option '{opt.names(f.name)[0]}'.", ctx=ctx)


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def config_from(config_cls: type, params: dict[str, Any]) -> Any:
    """A config instance from parsed flags: enums to their text, paths to str, tuples to lists
    (what the library stores and compares on resume)."""
    values = {}
    for f, opt, _ in options_of(config_cls):
        if opt.cli and f.name in params:
            value = params[f.name]
            if opt.path is None and isinstance(value, Path):
                value = str(value)
            values[f.name] = _plain(value) if value is not None else None
            if value is not None and get_origin(_optional(_flag_type(f.name, opt, _))[0]) is list:
                values[f.name] = [_plain(v) for v in value] or None
    return config_cls(**values)


class RunContext:
    """What a command body gets besides its config: the outputs it may create and callbacks
    that save the resolved config when training starts."""

    def __init__(self, cfg: Any, outputs: CreatedOutputs, directory: Path | None) -> None:
        self.cfg = cfg
        self.outputs = outputs
        self.directory = directory

    def options(self) -> dict[str, Any]:
        """Every flag's resolved value (flags and --config merged): what ``--config`` takes
        back. Fields set from Python only are left out; the library saves its whole config."""
        values = dataclasses.asdict(self.cfg)
        return {f.name: values[f.name] for f, opt, _ in options_of(type(self.cfg)) if opt.cli}

    def save_config(self, directory: Path | None = None) -> Path:
        """Write ``resolved_config.yaml`` (every option, flags and --config merged)."""
        return save_resolved_config(self.options(), directory or self.directory)

    def save_config_beside(self, output: Path) -> Path:
        """For a command that writes one file: ``<stem>.config.yaml`` beside ``output`` (e.g.
        ``generated.csv`` -> ``generated.config.yaml``), written once the output is."""
        from molfm.atomic import atomic_write_text

        clean = json.loads(json.dumps(self.options(), default=str))
        path = Path(output).with_name(Path(output).stem + ".config.yaml")
        return atomic_write_text(path, yaml.safe_dump(clean, sort_keys=True))

    def callbacks(self) -> list:
        """A Lightning callback that writes ``resolved_config.yaml`` when the fit starts (after
        every check, so a refused start never writes or overwrites it) and keeps the run
        directory once training starts: an interrupted run stays there to be resumed."""
        import lightning as L

        run = self

        class RunStarted(L.Callback):
            def on_fit_start(self, trainer, pl_module) -> None:
                if trainer.is_global_zero:
                    run.save_config()

            def on_train_start(self, trainer, pl_module) -> None:
                run.outputs.keep()

        return [RunStarted()]


def config_command(
    app: typer.Typer,
    name: str,
    config_cls: type,
    *,
    outputs: Callable[[Any], Iterable[Path | None]] = lambda cfg: [
        getattr(cfg, "output_dir", None) and Path(cfg.output_dir)
    ],
) -> Callable[[Callable[[Any, RunContext], None]], Callable[..., None]]:
    """Register ``body(cfg, run)`` as the command ``name`` of ``app``, its flags derived from
    ``config_cls``; ``outputs(cfg)`` lists what the command may create (removed on failure)."""

    def decorator(body: Callable[[Any, RunContext], None]) -> Callable[..., None]:
        @functools.wraps(body)
        def command(ctx: typer.Context, **params: Any) -> None:
            config_file = params.pop("config", None)
            params = merge_typed_config(ctx, config_file, params | {"config": config_file})
            params.pop("config", None)
            _check_required(ctx, config_cls, params)
            created = [Path(p) for p in outputs(_Partial(params)) if p]
            with user_errors(created=created) as made:
                from molfm.data.fetch import use_cache_dir

                cfg = config_from(config_cls, params)
                with use_cache_dir(getattr(cfg, "cache_dir", None)):
                    body(cfg, RunContext(cfg, made, created[0] if created else None))

        signature = [
            inspect.Parameter(
                "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
            ),
            *typer_parameters(config_cls),
            inspect.Parameter(
                "config",
                inspect.Parameter.KEYWORD_ONLY,
                default=config_option(),
                annotation=Path | None,
            ),
        ]
        # the summary as one line: typer's rich help keeps a docstring's line breaks
        summary, _, rest = inspect.cleandoc(body.__doc__ or "").partition("\n\n")
        command.__doc__ = " ".join(summary.split()) + (f"\n\n{rest}" if rest else "")
        command.__signature__ = inspect.Signature(signature)
        command.__annotations__ = {p.name: p.annotation for p in signature}
        del command.__wrapped__  # typer must read the derived signature, not the body's
        app.command(name)(command)
        return command

    return decorator


class _Partial:
    """Attribute access to parsed flags before the config exists (for ``outputs``)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.__dict__.update(params)

    def __getattr__(self, name: str) -> Any:
        return None
