"""Settings dataclasses declare their command-line options once, in field metadata.

A stage's settings dataclass is the one place where an option's name, type, default and help
text are written. `option` makes such a field; `add_options` turns the fields of a dataclass
into ``argparse`` options (nested settings dataclasses become argument groups) and
`settings_from_args` builds the dataclass back from the parsed namespace, so its own
validation (``__post_init__``) runs on what the user typed. Fields without help text are
settings, but not command-line options.

Only the standard library is imported here: the CLI must start fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Callable

_NONE_WORDS = ("none", "")


def option(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None,
           choices: tuple | None = None, metavar: str | None = None, parse: Callable[[str], Any] | None = None,
           nargs: str | None = None, default_factory: Callable[[], Any] | None = None,
           minimum: float | None = None, above: float | None = None) -> Any:
    """A dataclass field that is also a command-line option.

    Parameters
    ----------
    default : any
        The field's default (the option's default too).
    help : str
        Help text (the default is appended when it is informative).
    flag : str, optional
        Option string; ``--`` + the field name with dashes by default (``final_res`` ->
        ``--final-res``). Booleans get ``--x`` / ``--no-x``.
    choices, metavar, nargs : optional
        As in ``argparse``. A list-typed field takes ``nargs="+"`` unless given.
    parse : callable, optional
        Turns the typed text into the value (overrides the type-derived parser).
    default_factory : callable, optional
        As in `dataclasses.field`, for mutable defaults.
    minimum, above : float, optional
        The value must be ``>= minimum`` / ``> above`` (checked by `check_options`).
    """
    meta = {"help": help, "flag": flag, "choices": choices, "metavar": metavar, "parse": parse, "nargs": nargs,
            "minimum": minimum, "above": above}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def nested(cls: type, *, title: str | None = None) -> Any:
    """A field holding another settings dataclass; its options form one argument group."""
    return dataclasses.field(default_factory=cls, metadata={"nested": True, "title": title})


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """(inner type, allows None) of ``X | None`` / ``Optional[X]``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(tp))
    return tp, False


def _scalar_parser(tp: Any, optional: bool) -> Callable[[str], Any]:
    base = tp if tp in (int, float, str) else str

    def parse(text: str) -> Any:
        if optional and text.strip().lower() in _NONE_WORDS:
            return None
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {base.__name__}, got {text!r}") from None

    parse.__name__ = base.__name__
    return parse


def _tuple_parser(tp: Any) -> Callable[[str], tuple]:
    item = (typing.get_args(tp) or (str,))[0]
    item = item if item in (int, float) else str

    def parse(text: str) -> tuple:
        try:
            return tuple(item(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {item.__name__}s, got {text!r}") from None

    return parse


def _flag(f: dataclasses.Field, prefix: str) -> str:
    return f.metadata.get("flag") or "--" + (prefix + f.name).replace("_", "-")


def _default_text(value: Any) -> str:
    if value is None or value == "" or isinstance(value, bool) or value == []:
        return ""
    if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
    return f" (default {value})"


def add_options(parser: argparse.ArgumentParser | Any, cls: type, *, prefix: str = "",
                title: str | None = None) -> None:
    """Add one option per documented field of the settings dataclass ``cls``.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    cls : dataclass type
        Fields made with `option` become options; fields made with `nested` recurse into an
        argument group; other fields are left out.
    prefix : str
        Prepended to every destination (used for nested settings).
    title : str, optional
        Title of the argument group holding these options.
    """
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title) if title else parser
    defaults = cls()
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("nested"):
            sub = hints[f.name]
            doc = (sub.__doc__ or "").strip().splitlines()
            add_options(parser, sub, prefix=f"{prefix}{f.name}.", title=meta.get("title") or (doc[0] if doc else f.name))
            continue
        if "help" not in meta:
            continue
        dest = prefix + f.name
        default = getattr(defaults, f.name)
        tp, optional = _strip_optional(hints[f.name])
        kw: dict[str, Any] = {"dest": dest, "default": default}
        if tp is bool:
            group.add_argument(_flag(f, ""), action=argparse.BooleanOptionalAction, help=meta["help"], **kw)
            continue
        origin = typing.get_origin(tp) or tp
        if meta.get("parse"):
            kw["type"] = meta["parse"]
        elif origin is tuple:
            kw["type"] = _tuple_parser(tp)
        elif origin is list:
            item = (typing.get_args(tp) or (str,))[0]
            kw["type"] = _scalar_parser(item, False)
            kw["nargs"] = meta.get("nargs") or "+"
        else:
            kw["type"] = _scalar_parser(tp, optional)
        if meta.get("nargs"):
            kw["nargs"] = meta["nargs"]
        if meta.get("choices"):
            kw["choices"] = meta["choices"]
        else:
            kw["metavar"] = meta.get("metavar") or f.name.upper()
        group.add_argument(_flag(f, ""), help=meta["help"] + _default_text(default), **kw)


def settings_from_args(cls: type, args: argparse.Namespace, *, prefix: str = "") -> Any:
    """Build ``cls`` from a namespace parsed with `add_options` options.

    Raises
    ------
    ValueError
        Whatever the dataclass's own validation raises on an impossible setting.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        dest = prefix + f.name
        if f.metadata.get("nested"):
            values[f.name] = settings_from_args(hints[f.name], args, prefix=dest + ".")
        elif hasattr(args, dest):
            values[f.name] = getattr(args, dest)
    return cls(**values)


def check_options(settings: Any) -> None:
    """Refuse a settings dataclass whose option values break their declared choices or bounds.

    Call it from ``__post_init__``, so an impossible setting is refused before any work,
    from the command line (one line, exit status 2) and from Python alike.

    Raises
    ------
    ValueError
        Naming the option as the command line spells it, e.g. ``--n-paired must be >= 0, got -2``.
    """
    for f in dataclasses.fields(settings):
        meta = f.metadata
        if "help" not in meta:
            continue
        value = getattr(settings, f.name)
        name = _flag(f, "")
        for v in value if isinstance(value, (list, tuple)) and meta.get("choices") else [value]:
            if v is None or isinstance(v, bool):
                continue
            if meta.get("choices") and v not in meta["choices"]:
                raise ValueError(f"{name} must be one of {', '.join(map(str, meta['choices']))}, got {v!r}")
            if meta.get("minimum") is not None and not v >= meta["minimum"]:
                raise ValueError(f"{name} must be >= {meta['minimum']:g}, got {v}")
            if meta.get("above") is not None and not v > meta["above"]:
                raise ValueError(f"{name} must be > {meta['above']:g}, got {v}")


def cli_fields(cls: type) -> list[str]:
    """Names of the fields of ``cls`` that are command-line options (nested ones dotted)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("nested"):
            out += [f"{f.name}.{n}" for n in cli_fields(hints[f.name])]
        elif "help" in f.metadata:
            out.append(f.name)
    return out
