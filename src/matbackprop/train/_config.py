"""Typed configuration: the one validator of every config dataclass, TOML/YAML and overrides.

A configuration is a tree of dataclasses (:class:`~matbackprop.train.TrainConfig` for the
trainer; a task's ``Config`` nests it beside its own sections). Every field is validated
against its type annotation, *and only there*: a constraint that a type cannot say is written
into the annotation with ``typing.Annotated``::

    @dataclass
    class ModelConfig:
        output_stride: Literal[8, 16, 32] = 16
        eps: Annotated[float, Range(gt=0)] = 1.0
        reduce_dim: Annotated[int | None, Range(ge=1)] = None
        trainable: Annotated[str, Check(parse_trainable, "'all', 'none' or 'last-<k>'")] = "all"

        def __post_init__(self) -> None:
            validate_fields(self, prefix="model.")   # converts and checks every field

The functions below work on *any* such tree:

- :func:`validate_fields` converts/checks the fields of one dataclass (call it in
  ``__post_init__``; rules that tie fields together follow it and raise
  :class:`~matbackprop.errors.ConfigError`);
- :func:`config_from_dict` builds a dataclass from a nested mapping;
- :func:`load_config` reads a ``.toml`` (``tomllib``) or ``.yaml``/``.yml`` (``yaml.safe_load``)
  file, nested sections allowed, then applies overrides;
- :func:`apply_overrides` applies ``"section.key=value"`` strings (the CLI's ``--set``), parsing
  each value according to the field type (never with ``eval``);
- :func:`config_to_dict` / :func:`save_config` give plain data back (YAML on disk).

Supported annotations: ``bool``, ``int``, ``float``, ``str``, ``pathlib.Path``, ``Literal[...]``,
``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, nested dataclasses, ``Any``, and
``Annotated[X, constraint, ...]`` with the constraints :class:`~matbackprop.train.Range`,
:class:`~matbackprop.train.Pattern` and :class:`~matbackprop.train.Check` (applied to the
converted value; ``None`` passes them). Unknown keys and invalid values raise
:class:`~matbackprop.errors.ConfigError` (a ``ValueError``) naming the dotted key.

Override syntax (values are parsed by the field's type): booleans ``true/false/yes/no/on/off/1/0``;
``none`` or ``null`` for an optional field; sequences as ``1,2,3`` or ``[1, 2, 3]``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from matbackprop.errors import ConfigError
from matbackprop.train._constraints import check_constraints, split_annotated

__all__ = [
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
    "validate_fields",
]

C = TypeVar("C")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", "~"}


# --------------------------------------------------------------------------------------------
# type conversion
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    tp = split_annotated(tp)[0]
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, from_text: bool) -> Any:
    """Convert ``value`` to ``tp`` and check its constraints (strictly for parsed data, by
    parsing for text)."""
    tp, constraints = split_annotated(tp)
    out = _convert(value, tp, key, from_text)
    check_constraints(out, constraints, key)
    return out


def _convert(value: Any, tp: Any, key: str, from_text: bool) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if origin in (Union, types.UnionType):
        if type(None) in args and (
            value is None or (from_text and str(value).strip().lower() in _NONE)
        ):
            return None
        for option in args:
            if option is type(None):
                continue
            base, constraints = split_annotated(option)
            try:
                converted = _convert(value, base, key, from_text)
            except ConfigError:
                continue
            check_constraints(converted, constraints, key)  # a wrong value, not a wrong type
            return converted
        raise ConfigError(
            f"`{key}` must be {' or '.join(_type_name(a) for a in args)}, got {value!r}"
        )
    if value is None:
        raise ConfigError(f"`{key}` must be {_type_name(tp)}, got None")

    if origin is Literal:
        for choice in args:
            if from_text and isinstance(value, str) and str(choice) == value.strip():
                return choice
            if type(value) is type(choice) and value == choice:
                return choice
        raise ConfigError(f"`{key}` must be one of {list(args)}, got {value!r}")

    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping) and not from_text:
            return _from_mapping(tp, value, key + ".")
        raise ConfigError(
            f"`{key}` is a section ({tp.__name__}); set its fields, e.g. `{key}.<field>=...`"
        )

    if origin in (tuple, list):
        return _convert_sequence(value, origin, args, key, from_text)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).strip().lower() in _TRUE | _FALSE:
            return str(value).strip().lower() in _TRUE
        raise ConfigError(f"`{key}` must be a bool, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"`{key}` must be an int, got {value!r}")
    if tp is float:
        return _convert_float(value, key, from_text)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"`{key}` must be a str, got {value!r}")
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"`{key}` must be a path, got {value!r}")
    if tp is Any:
        return value
    raise TypeError(f"config field `{key}` has an unsupported type annotation {tp!r}")


def _convert_float(value: Any, key: str, from_text: bool) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        out = float(value)
    elif from_text and isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise ConfigError(f"`{key}` must be a float, got {value!r}") from None
    else:
        raise ConfigError(f"`{key}` must be a float, got {value!r}")
    if not math.isfinite(out):
        raise ConfigError(f"`{key}` must be finite, got {value!r}")
    return out


def _convert_sequence(value: Any, origin: Any, args: tuple, key: str, from_text: bool) -> Any:
    if from_text:
        text = str(value).strip()
        if text[:1] + text[-1:] in ("[]", "()"):
            text = text[1:-1]
        items: list[Any] = [t.strip() for t in text.split(",")] if text.strip() else []
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError(f"`{key}` must be a sequence, got {value!r}")
    if origin is list:
        return [_coerce(v, args[0], f"{key}[{i}]", from_text) for i, v in enumerate(items)]
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(v, args[0], f"{key}[{i}]", from_text) for i, v in enumerate(items))
    if len(items) != len(args):
        raise ConfigError(f"`{key}` must have {len(args)} items, got {len(items)}: {value!r}")
    return tuple(
        _coerce(v, a, f"{key}[{i}]", from_text)
        for i, (v, a) in enumerate(zip(items, args, strict=True))
    )


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _from_mapping(cls: type[C], data: Mapping[str, Any], prefix: str) -> C:
    if not isinstance(data, Mapping):
        raise ConfigError(f"`{prefix.rstrip('.') or 'config'}` must be a mapping, got {data!r}")
    hints = _hints(cls)
    names = _field_names(cls)
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(f'`{prefix}{k}`' for k in unknown)}; "
            f"valid keys{' in `' + prefix.rstrip('.') + '`' if prefix else ''}: {', '.join(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k, from_text=False) for k, v in data.items()}
    return cls(**kwargs)


def validate_fields(config: Any, prefix: str = "") -> None:
    """Convert and check every field of a config dataclass against its annotation, in place.

    Call it first in ``__post_init__``; it also works on frozen dataclasses. Values are
    converted where that loses nothing (an int for a float field, a str for a ``Path``, a
    mapping for a nested section); anything else that does not match raises.

    Parameters
    ----------
    config : dataclass instance
    prefix : str
        Printed before the field names in messages (e.g. ``"optim."``), for sections built
        directly rather than through :func:`config_from_dict`.

    Raises
    ------
    matbackprop.errors.ConfigError
        Naming the dotted key, what was expected and what came.

    Examples
    --------
    >>> from matbackprop.train import OptimConfig, validate_fields
    >>> config = OptimConfig()
    >>> config.lr = 1                                   # an int where a float belongs
    >>> validate_fields(config, prefix="optim.")
    >>> config.lr
    1.0
    >>> config.lr = "0.5"
    >>> validate_fields(config, prefix="optim.")
    Traceback (most recent call last):
    ...
    matbackprop.errors.ConfigError: `optim.lr` must be a float, got '0.5'
    """
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        value = _coerce(getattr(config, f.name), hints[f.name], prefix + f.name, from_text=False)
        object.__setattr__(config, f.name, value)


def config_from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Build the dataclass ``cls`` from a nested mapping.

    Parameters
    ----------
    cls : type
        A dataclass type (e.g. :class:`TrainConfig`); nested dataclass fields take nested
        mappings. Missing keys keep their defaults.
    data : Mapping
        Parsed TOML/YAML content.

    Returns
    -------
    cls instance

    Raises
    ------
    matbackprop.errors.ConfigError
        For unknown keys (named with their dotted path and the valid keys) or values that do not
        match the field types or the config's own checks.

    Examples
    --------
    >>> from matbackprop.train import TrainConfig, config_from_dict
    >>> config = config_from_dict(TrainConfig, {"steps": 50, "optim": {"lr": 0.01}})
    >>> config.steps, config.optim.lr
    (50, 0.01)
    >>> config_from_dict(TrainConfig, {"stepz": 50})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    matbackprop.errors.ConfigError: unknown config key `stepz`; valid keys: name, ...
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise ValueError(f"`cls` must be a dataclass type, got {cls!r}")
    return _from_mapping(cls, data, "")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass config (tuples as lists, paths as str), for YAML/JSON.

    Examples
    --------
    >>> from matbackprop.train import TrainConfig, config_to_dict
    >>> data = config_to_dict(TrainConfig(steps=10))
    >>> data["steps"], data["optim"]["name"], data["out_dir"]
    (10, 'adamw', 'runs')
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ValueError(f"`config` must be a dataclass instance, got {type(config).__name__}")

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(config)


def _split_override(item: str) -> tuple[list[str], str]:
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(
            f"override must look like `key=value` or `section.key=value`, got {item!r}"
        )
    key, text = item.split("=", 1)
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ConfigError(f"override key must be a dotted name, got {key!r} in {item!r}")
    return key.split("."), text


def apply_overrides(config: C, overrides: Iterable[str]) -> C:
    """Return a copy of ``config`` with ``"section.key=value"`` overrides applied.

    Each value is parsed according to the type annotation of the field it sets (see the module
    docstring for the syntax); the result is validated once, after all overrides.

    Parameters
    ----------
    config : dataclass instance
        E.g. a :class:`TrainConfig`. Not modified.
    overrides : iterable of str
        E.g. ``["optim.lr=0.01", "steps=100", "epochs=none"]``.

    Returns
    -------
    A new instance of ``type(config)``.

    Raises
    ------
    matbackprop.errors.ConfigError
        For a malformed item, an unknown key (named, with the valid keys) or a value that does not
        parse as the field's type or fails the config's checks.

    Examples
    --------
    >>> from matbackprop.train import TrainConfig, apply_overrides
    >>> config = apply_overrides(TrainConfig(), ["optim.name=sgd", "schedule.warmup_steps=10"])
    >>> config.optim.name, config.schedule.warmup_steps
    ('sgd', 10)
    >>> apply_overrides(TrainConfig(), ["optim.learning_rate=0.1"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    matbackprop.errors.ConfigError: unknown config key `optim.learning_rate` (from ...
    """
    if isinstance(overrides, str):
        raise ValueError("`overrides` must be an iterable of 'key=value' strings, not one string")
    data = config_to_dict(config)
    for item in overrides:
        parts, text = _split_override(item)
        cls: Any = type(config)
        node = data
        for depth, name in enumerate(parts):
            dotted = ".".join(parts[: depth + 1])
            names = _field_names(cls)
            if name not in names:
                where = ".".join(parts[:depth])
                raise ConfigError(
                    f"unknown config key `{dotted}` (from override {item!r}); valid keys"
                    f"{' in `' + where + '`' if where else ''}: {', '.join(names)}"
                )
            tp = _hints(cls)[name]
            if depth < len(parts) - 1:
                section = split_annotated(tp)[0]
                if not (dataclasses.is_dataclass(section) and isinstance(section, type)):
                    raise ConfigError(
                        f"`{dotted}` is not a section, cannot set `{'.'.join(parts)}`"
                    )
                cls, node = section, node[name]
            else:
                node[name] = _coerce(text, tp, dotted, from_text=True)
    return config_from_dict(type(config), data)


def load_config(path: str | Path, cls: type[C] | None = None, overrides: Iterable[str] = ()) -> C:
    """Load a config from a TOML or YAML file, then apply overrides.

    Parameters
    ----------
    path : str or Path
        ``.toml`` (read with ``tomllib``) or ``.yaml`` / ``.yml`` (``yaml.safe_load``). Nested
        tables/mappings fill nested dataclass fields; an empty YAML file gives the defaults.
    cls : dataclass type, optional
        Defaults to :class:`TrainConfig`.
    overrides : iterable of str
        ``"section.key=value"`` items, see :func:`apply_overrides`.

    Returns
    -------
    cls instance

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    matbackprop.errors.ConfigError
        For an unknown suffix, a file that does not parse, unknown keys or bad values.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from matbackprop.train import TrainConfig, load_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = Path(tmp.name) / "run.toml"
    >>> _ = path.write_text("steps = 100\\n[optim]\\nlr = 0.01\\n")
    >>> config = load_config(path, TrainConfig, overrides=["batch_size=4"])
    >>> config.steps, config.optim.lr, config.batch_size
    (100, 0.01, 4)
    >>> tmp.cleanup()
    """
    path = Path(path)
    if cls is None:
        from matbackprop.train._train_config import TrainConfig

        cls = TrainConfig  # type: ignore[assignment]
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            with path.open("rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: cannot parse config ({exc})") from exc
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            with path.open("r", encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: cannot parse config ({exc})") from exc
        data = {} if data is None else data
    else:
        raise ConfigError(f"`path` must end in .toml, .yaml or .yml, got {path.name!r}")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the config must be a mapping at top level, got {type(data)}")
    try:
        config = config_from_dict(cls, data)  # type: ignore[arg-type]  # cls set above if None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return apply_overrides(config, overrides) if overrides else config


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` as YAML (readable back with :func:`load_config`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from matbackprop.train import TrainConfig, load_config, save_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> save_config(TrainConfig(steps=7), Path(tmp.name) / "config.yaml")
    >>> load_config(Path(tmp.name) / "config.yaml", TrainConfig).steps
    7
    >>> tmp.cleanup()
    """
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    path.write_text(text, encoding="utf-8")
