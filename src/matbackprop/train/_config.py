"""Typed training configuration: dataclasses, TOML/YAML loading and ``key=value`` overrides.

A configuration is a tree of dataclasses. :class:`TrainConfig` is the one the
:class:`~matbackprop.train.Trainer` reads; experiment configs can nest it (e.g. a dataclass with
``train: TrainConfig``, ``model: ModelConfig`` fields) and use the same functions, which work on
*any* dataclass tree:

- :func:`config_from_dict` builds a dataclass from a nested mapping, converting and checking each
  value against the field's type annotation;
- :func:`load_config` reads a ``.toml`` (``tomllib``) or ``.yaml``/``.yml`` (``yaml.safe_load``)
  file, nested sections allowed, then applies overrides;
- :func:`apply_overrides` applies ``"section.key=value"`` strings (the CLI's ``--set``), parsing
  each value according to the field type (never with ``eval``);
- :func:`config_to_dict` / :func:`save_config` give plain data back (YAML on disk).

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``pathlib.Path``, ``Literal[...]``,
``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]`` and nested dataclasses. Unknown keys
and values of the wrong type raise ``ValueError`` naming the dotted key.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

__all__ = [
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]

C = TypeVar("C")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", "~"}


# --------------------------------------------------------------------------------------------
# type conversion
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, from_text: bool) -> Any:
    """Convert ``value`` to type ``tp`` (strictly for parsed data, by parsing for text)."""
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
            try:
                return _coerce(value, option, key, from_text)
            except ValueError:
                continue
        raise ValueError(
            f"`{key}` must be {' or '.join(_type_name(a) for a in args)}, got {value!r}"
        )
    if value is None:
        raise ValueError(f"`{key}` must be {_type_name(tp)}, got None")

    if origin is Literal:
        for choice in args:
            if from_text and isinstance(value, str) and str(choice) == value.strip():
                return choice
            if type(value) is type(choice) and value == choice:
                return choice
        raise ValueError(f"`{key}` must be one of {list(args)}, got {value!r}")

    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping) and not from_text:
            return _from_mapping(tp, value, key + ".")
        raise ValueError(
            f"`{key}` is a section ({tp.__name__}); set its fields, e.g. `{key}.<field>=...`"
        )

    if origin in (tuple, list):
        if from_text:
            text = str(value).strip()
            if text[:1] + text[-1:] in ("[]", "()"):
                text = text[1:-1]
            items: list[Any] = [t.strip() for t in text.split(",")] if text.strip() else []
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise ValueError(f"`{key}` must be a sequence, got {value!r}")
        if origin is list:
            return [_coerce(v, args[0], f"{key}[{i}]", from_text) for i, v in enumerate(items)]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]", from_text) for i, v in enumerate(items))
        if len(items) != len(args):
            raise ValueError(f"`{key}` must have {len(args)} items, got {len(items)}: {value!r}")
        return tuple(
            _coerce(v, a, f"{key}[{i}]", from_text)
            for i, (v, a) in enumerate(zip(items, args, strict=True))
        )

    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).strip().lower() in _TRUE | _FALSE:
            return str(value).strip().lower() in _TRUE
        raise ValueError(f"`{key}` must be a bool, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"`{key}` must be an int, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out = float(value)
        elif from_text and isinstance(value, str):
            try:
                out = float(value.strip())
            except ValueError:
                raise ValueError(f"`{key}` must be a float, got {value!r}") from None
        else:
            raise ValueError(f"`{key}` must be a float, got {value!r}")
        if not math.isfinite(out):
            raise ValueError(f"`{key}` must be finite, got {value!r}")
        return out
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"`{key}` must be a str, got {value!r}")
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ValueError(f"`{key}` must be a path, got {value!r}")
    if tp is Any:
        return value
    raise TypeError(f"config field `{key}` has an unsupported type annotation {tp!r}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_mapping(cls: type[C], data: Mapping[str, Any], prefix: str) -> C:
    if not isinstance(data, Mapping):
        raise ValueError(f"`{prefix.rstrip('.') or 'config'}` must be a mapping, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ValueError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(f'`{prefix}{k}`' for k in unknown)}; "
            f"valid keys{' in `' + prefix.rstrip('.') + '`' if prefix else ''}: {', '.join(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k, from_text=False) for k, v in data.items()}
    return cls(**kwargs)


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
    ValueError
        For unknown keys (named with their dotted path and the valid keys) or values that do not
        match the field types or the config's own checks.
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise ValueError(f"`cls` must be a dataclass type, got {cls!r}")
    return _from_mapping(cls, data, "")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass config (tuples as lists, paths as str), for YAML/JSON."""
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
        raise ValueError(
            f"override must look like `key=value` or `section.key=value`, got {item!r}"
        )
    key, text = item.split("=", 1)
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ValueError(f"override key must be a dotted name, got {key!r} in {item!r}")
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
    ValueError
        For a malformed item, an unknown key (named, with the valid keys) or a value that does not
        parse as the field's type or fails the config's checks.
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
            hints = _hints(cls)
            names = [f.name for f in dataclasses.fields(cls) if f.init]
            if name not in names:
                where = ".".join(parts[:depth])
                raise ValueError(
                    f"unknown config key `{dotted}` (from override {item!r}); valid keys"
                    f"{' in `' + where + '`' if where else ''}: {', '.join(names)}"
                )
            tp = hints[name]
            if depth < len(parts) - 1:
                if not (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
                    raise ValueError(f"`{dotted}` is not a section, cannot set `{'.'.join(parts)}`")
                cls, node = tp, node[name]
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
    ValueError
        For an unknown suffix, a file that does not parse, unknown keys or bad values.
    """
    path = Path(path)
    cls = TrainConfig if cls is None else cls  # type: ignore[assignment]
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            with path.open("rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: cannot parse config ({exc})") from exc
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            with path.open("r", encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: cannot parse config ({exc})") from exc
        data = {} if data is None else data
    else:
        raise ValueError(f"`path` must end in .toml, .yaml or .yml, got {path.name!r}")
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: the config must be a mapping at top level, got {type(data)}")
    try:
        config = config_from_dict(cls, data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return apply_overrides(config, overrides) if overrides else config


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` as YAML (readable back with :func:`load_config`)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------
# the configs
# --------------------------------------------------------------------------------------------


def _validate_types(obj: Any) -> None:
    """Convert/check every field of a config dataclass against its annotation (in place)."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = _coerce(getattr(obj, f.name), hints[f.name], f.name, from_text=False)
        object.__setattr__(obj, f.name, value)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class OptimConfig:
    """Optimizer settings (section ``optim``).

    Attributes
    ----------
    name : {"adamw", "sgd"}
        ``torch.optim.AdamW`` or ``torch.optim.SGD``.
    lr : float
        Peak learning rate (> 0); the schedule multiplies it.
    weight_decay : float
        Decoupled (AdamW) or L2 (SGD) weight decay, >= 0.
    momentum : float
        SGD momentum in [0, 1).
    nesterov : bool
        SGD Nesterov momentum (needs momentum > 0).
    betas : tuple of float
        AdamW betas, each in [0, 1).
    eps : float
        AdamW epsilon (> 0).
    decay_norm_and_bias : bool
        If False (default) parameters with fewer than 2 dimensions (biases, norm scales) get no
        weight decay.
    """

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    decay_norm_and_bias: bool = False

    def __post_init__(self) -> None:
        _validate_types(self)
        _check(self.lr > 0, f"`optim.lr` must be > 0, got {self.lr}")
        _check(
            self.weight_decay >= 0,
            f"`optim.weight_decay` must be >= 0, got {self.weight_decay}",
        )
        _check(0 <= self.momentum < 1, f"`optim.momentum` must be in [0, 1), got {self.momentum}")
        _check(
            not self.nesterov or self.momentum > 0,
            "`optim.nesterov` needs `optim.momentum` > 0",
        )
        _check(
            all(0 <= b < 1 for b in self.betas),
            f"`optim.betas` must be in [0, 1), got {self.betas}",
        )
        _check(self.eps > 0, f"`optim.eps` must be > 0, got {self.eps}")


@dataclass
class ScheduleConfig:
    """Learning-rate schedule (section ``schedule``): multiplier ``f(step)`` of ``optim.lr``.

    With ``w = warmup_steps``, ``T`` the total steps and ``t = step - w``:

    - warm-up (``step < w``): ``f = (step + 1) / w``;
    - ``constant``: ``f = 1``;
    - ``cosine``: ``f = r + (1 - r) (1 + cos(pi t / (T - w))) / 2`` with ``r = min_lr_ratio``;
    - ``step``: ``f = gamma ** floor(t / step_size)``.

    Attributes
    ----------
    name : {"constant", "cosine", "step"}
    warmup_steps : int
        Linear warm-up length, >= 0.
    min_lr_ratio : float
        Cosine floor as a fraction of ``optim.lr``, in [0, 1].
    step_size : int
        Steps between decays of the ``step`` schedule, >= 1.
    gamma : float
        Decay factor of the ``step`` schedule, > 0.
    """

    name: Literal["constant", "cosine", "step"] = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    step_size: int = 1000
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _validate_types(self)
        _check(
            self.warmup_steps >= 0,
            f"`schedule.warmup_steps` must be >= 0, got {self.warmup_steps}",
        )
        _check(
            0 <= self.min_lr_ratio <= 1,
            f"`schedule.min_lr_ratio` must be in [0, 1], got {self.min_lr_ratio}",
        )
        _check(self.step_size >= 1, f"`schedule.step_size` must be >= 1, got {self.step_size}")
        _check(self.gamma > 0, f"`schedule.gamma` must be > 0, got {self.gamma}")


@dataclass
class TrainConfig:
    """Everything the :class:`~matbackprop.train.Trainer` needs to know.

    Attributes
    ----------
    name : str
        Run name; the run directory is ``<out_dir>/<name>/``. No path separators.
    out_dir : Path
        Parent of the run directories (default ``"runs"``).
    steps : int, optional
        Number of optimizer steps. Exactly one of ``steps`` / ``epochs`` must be set (checked by
        the trainer; ``None`` in both is allowed here so that a file can pick either).
    epochs : float, optional
        Length in passes over the data: ``steps = ceil(epochs * ceil(N / W) / batch_size)``
        with ``N`` items and ``W`` processes.
    batch_size : int
        Items per step *per process* (global batch = ``batch_size * world_size``).
    optim : OptimConfig
    schedule : ScheduleConfig
    grad_clip : float, optional
        Clip the global gradient L2 norm to this value (None: no clipping).
    seed : int
        Seeds model-side RNGs (``seed + rank``), the data order and per-item augmentation.
    checkpoint_every : int
        Write ``last.pt`` every N steps (0: only at the end, on signals and on errors).
    keep_checkpoints : bool
        Also keep ``step_<NNNNNNNN>.pt`` for every checkpoint written.
    log_every : int
        Append a record to ``metrics.jsonl`` every N steps (loss/metrics averaged over the
        window and over processes).
    eval_every : int, optional
        Call ``eval_fn`` every N steps (and after the last step); None: never.
    device : str
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:<i>"``. Under
        DDP, ``"auto"``/``"cuda"`` use ``cuda:<LOCAL_RANK>``.
    skip_bad : bool
        Skip items whose loading raises ``DataFileError`` (logged to ``skipped.txt`` and the
        JSONL log) instead of stopping.
    num_workers : int
        DataLoader worker processes that fetch items (0: fetch in the main process).
    deterministic : bool
        Call ``torch.use_deterministic_algorithms(True, warn_only=True)`` and set cuDNN to
        deterministic for the duration of ``fit``.
    progress : bool, optional
        Show a tqdm bar on stderr; None: only when stderr is a terminal.
    on_nonfinite : {"raise", "skip"}
        What to do when the gradient norm is NaN/inf: raise ``FloatingPointError`` (after writing
        a checkpoint of the state before the step) or skip the update and log it.
    find_unused_parameters : bool
        Passed to ``DistributedDataParallel`` (needed when some parameters get no gradient).
    """

    name: str = "run"
    out_dir: Path = Path("runs")
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 8
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    grad_clip: float | None = None
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: bool = False
    log_every: int = 10
    eval_every: int | None = None
    device: str = "auto"
    skip_bad: bool = False
    num_workers: int = 0
    deterministic: bool = False
    progress: bool | None = None
    on_nonfinite: Literal["raise", "skip"] = "raise"
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        _validate_types(self)
        _check(
            bool(self.name)
            and re.fullmatch(r"[A-Za-z0-9_.@+=-]+", self.name) is not None
            and self.name not in (".", ".."),
            f"`name` must be a non-empty file name (letters, digits, _.@+=-), got {self.name!r}",
        )
        _check(str(self.out_dir) != "", "`out_dir` must not be empty")
        _check(self.steps is None or self.steps >= 1, f"`steps` must be >= 1, got {self.steps}")
        _check(self.epochs is None or self.epochs > 0, f"`epochs` must be > 0, got {self.epochs}")
        _check(
            self.steps is None or self.epochs is None,
            f"set only one of `steps` ({self.steps}) and `epochs` ({self.epochs}); "
            "unset the other with `=none`",
        )
        _check(self.batch_size >= 1, f"`batch_size` must be >= 1, got {self.batch_size}")
        _check(
            self.grad_clip is None or self.grad_clip > 0,
            f"`grad_clip` must be > 0 or None, got {self.grad_clip}",
        )
        _check(self.seed >= 0, f"`seed` must be >= 0, got {self.seed}")
        _check(
            self.checkpoint_every >= 0,
            f"`checkpoint_every` must be >= 0, got {self.checkpoint_every}",
        )
        _check(self.log_every >= 1, f"`log_every` must be >= 1, got {self.log_every}")
        _check(
            self.eval_every is None or self.eval_every >= 1,
            f"`eval_every` must be >= 1 or None, got {self.eval_every}",
        )
        _check(
            re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None,
            f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {self.device!r}",
        )
        _check(self.num_workers >= 0, f"`num_workers` must be >= 0, got {self.num_workers}")

    @property
    def run_dir(self) -> Path:
        """``Path(out_dir) / name``: where logs, checkpoints and the config copy go."""
        return Path(self.out_dir) / self.name
