"""The trainer's configuration: :class:`TrainConfig` with its :class:`OptimConfig` and
:class:`ScheduleConfig` sections.

Every field is checked by :func:`~matbackprop.train.validate_fields` against its annotation
(constraints in ``Annotated[...]``); ``__post_init__`` adds only the rules that tie fields
together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from matbackprop.errors import ConfigError
from matbackprop.train._config import validate_fields
from matbackprop.train._constraints import Pattern, Range

__all__ = ["OptimConfig", "ScheduleConfig", "TrainConfig"]

_FRACTION = Range(ge=0, lt=1)  # [0, 1)
_POSITIVE = Range(gt=0)
_AT_LEAST_0 = Range(ge=0)
_AT_LEAST_1 = Range(ge=1)
_FILE_NAME = Pattern(
    r"(?![.]{1,2}$)[A-Za-z0-9_.@+=-]+", "a non-empty file name (letters, digits, _.@+=-)"
)
_DEVICE = Pattern(r"auto|cpu|cuda(:\d+)?", "'auto', 'cpu', 'cuda' or 'cuda:<index>'")


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
    lr: Annotated[float, _POSITIVE] = 1e-3
    weight_decay: Annotated[float, _AT_LEAST_0] = 0.0
    momentum: Annotated[float, _FRACTION] = 0.9
    nesterov: bool = False
    betas: tuple[Annotated[float, _FRACTION], Annotated[float, _FRACTION]] = (0.9, 0.999)
    eps: Annotated[float, _POSITIVE] = 1e-8
    decay_norm_and_bias: bool = False

    def __post_init__(self) -> None:
        validate_fields(self, prefix="optim.")
        if self.nesterov and not self.momentum > 0:
            raise ConfigError("`optim.nesterov` needs `optim.momentum` > 0")


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
    warmup_steps: Annotated[int, _AT_LEAST_0] = 0
    min_lr_ratio: Annotated[float, Range(ge=0, le=1)] = 0.0
    step_size: Annotated[int, _AT_LEAST_1] = 1000
    gamma: Annotated[float, _POSITIVE] = 0.1

    def __post_init__(self) -> None:
        validate_fields(self, prefix="schedule.")


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
    seeds : list of int, optional
        Repeat a task's whole run once per seed (distinct, >= 0): a task's ``train`` and
        ``evaluate`` then run in ``<run_dir>/seed_<s>/`` with ``seed = s`` each, and write a
        combined record (mean ± std over the seeds) in ``<run_dir>``; see
        :mod:`matbackprop.tasks`. None (default): one run with ``seed``. The
        :class:`~matbackprop.train.Trainer` itself trains one seed and refuses a config that
        sets ``seeds``.
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

    name: Annotated[str, _FILE_NAME] = "run"
    out_dir: Path = Path("runs")
    steps: Annotated[int | None, _AT_LEAST_1] = None
    epochs: Annotated[float | None, _POSITIVE] = None
    batch_size: Annotated[int, _AT_LEAST_1] = 8
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    grad_clip: Annotated[float | None, _POSITIVE] = None
    seed: Annotated[int, _AT_LEAST_0] = 0
    seeds: list[Annotated[int, _AT_LEAST_0]] | None = None
    checkpoint_every: Annotated[int, _AT_LEAST_0] = 500
    keep_checkpoints: bool = False
    log_every: Annotated[int, _AT_LEAST_1] = 10
    eval_every: Annotated[int | None, _AT_LEAST_1] = None
    device: Annotated[str, _DEVICE] = "auto"
    skip_bad: bool = False
    num_workers: Annotated[int, _AT_LEAST_0] = 0
    deterministic: bool = False
    progress: bool | None = None
    on_nonfinite: Literal["raise", "skip"] = "raise"
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.steps is not None and self.epochs is not None:
            raise ConfigError(
                f"set only one of `steps` ({self.steps}) and `epochs` ({self.epochs}); "
                "unset the other with `=none`"
            )
        if self.seeds is not None and not self.seeds:
            raise ConfigError("`seeds` must list at least one seed (or be none for one run)")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"`seeds` must not repeat a seed, got {self.seeds}")

    @property
    def run_dir(self) -> Path:
        """``Path(out_dir) / name``: where logs, checkpoints and the config copy go."""
        return Path(self.out_dir) / self.name
