"""Data order and item fetching: deterministic, shardable, resumable, tolerant of bad files.

**Order.** Epoch ``e`` visits the dataset in the permutation drawn by NumPy's PCG64 seeded with
``SeedSequence([seed, e])``. For ``W`` processes the permutation is padded to a multiple of ``W``
by repeating its first items (as ``torch.utils.data.DistributedSampler`` does) and rank ``r``
takes every ``W``-th item starting at ``r``: its *shard* of ``L = ceil(N / W)`` items. The stream
of a rank is the concatenation of its shards for epochs 0, 1, 2, ...; batches are consecutive
windows of ``batch_size`` good items of that stream, so an epoch boundary can fall inside a batch
and every batch has the same size.

**Position.** A rank's place in its stream is a :class:`StreamPosition` ``(epoch, offset)``. The
trainer stores it in checkpoints; resuming recomputes the epoch's permutation and starts at
``offset`` without touching the skipped items.

**Fetching.** Item ``i`` of epoch ``e`` is fetched as ``dataset[i]`` right after seeding
Python ``random``, ``np.random`` and torch's CPU generator with a seed derived from
``(seed, e, i)`` (the states of the main process are saved before and restored after each batch,
workers need no restoring): random
augmentation drawn from Python ``random``, ``np.random`` or torch's CPU generator is a function
of ``(seed, e, i)`` only -- the same with or without workers, before or after a resume -- and
does not disturb the model-side random streams. With ``num_workers > 0`` items are fetched by a
``torch.utils.data.DataLoader`` (one item per request, in order); collation happens in the main
process.

**Bad files.** A ``DataFileError`` raised by ``dataset[i]`` is caught where it happens (also in a
worker) and turned into a :class:`BadItem`, so that the trainer can either stop with an error
naming the file or skip the item and take the next one.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from matbackprop.errors import DataFileError
from matbackprop.train._rng import preserved_cpu_rng, seed_cpu_generators

__all__ = ["BadItem", "BatchStream", "DataOrder", "StreamPosition"]


@dataclass(frozen=True)
class StreamPosition:
    """Position in a rank's item stream: ``offset`` items of epoch ``epoch``'s shard consumed.

    Examples
    --------
    >>> from matbackprop.train import StreamPosition
    >>> StreamPosition(epoch=1, offset=32)
    StreamPosition(epoch=1, offset=32)
    """

    epoch: int = 0
    offset: int = 0

    def as_list(self) -> list[int]:
        return [self.epoch, self.offset]


@dataclass(frozen=True)
class BadItem:
    """An item whose loading raised ``DataFileError``."""

    index: int
    path: str
    reason: str
    epoch: int

    def to_error(self) -> DataFileError:
        return DataFileError(self.path, self.reason)


class DataOrder:
    """Deterministic per-epoch permutation, sharded over ranks.

    Parameters
    ----------
    num_items : int
        Dataset length ``N`` (>= 1).
    seed : int
        Non-negative seed; epoch ``e`` uses ``SeedSequence([seed, e])``.
    rank, world_size : int
        This process's shard.
    shuffle : bool
        If False every epoch is ``0, 1, ..., N-1`` (before sharding).

    Examples
    --------
    >>> from matbackprop.train import DataOrder
    >>> order = DataOrder(num_items=10, seed=0, rank=0, world_size=2)
    >>> shard = order.shard(epoch=0)
    >>> len(shard), bool((shard == DataOrder(10, seed=0, world_size=2).shard(epoch=0)).all())
    (5, True)
    >>> set(shard).isdisjoint(DataOrder(10, seed=0, rank=1, world_size=2).shard(epoch=0))
    True
    """

    def __init__(
        self, num_items: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True
    ) -> None:
        if num_items < 1:
            raise ValueError(f"`num_items` must be >= 1, got {num_items}")
        if seed < 0:
            raise ValueError(f"`seed` must be >= 0, got {seed}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world={world_size}")
        self.num_items = num_items
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.shard_length = math.ceil(num_items / world_size)

    def permutation(self, epoch: int) -> np.ndarray:
        """All ``N`` indices in epoch ``epoch``'s order (same on every rank)."""
        if not self.shuffle:
            return np.arange(self.num_items)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch])))
        return rng.permutation(self.num_items)

    def shard(self, epoch: int) -> np.ndarray:
        """The ``L = ceil(N / W)`` indices this rank visits in epoch ``epoch``."""
        perm = self.permutation(epoch)
        total = self.shard_length * self.world_size
        if total > len(perm):
            perm = np.concatenate([perm, np.resize(perm, total - len(perm))])
        return perm[self.rank :: self.world_size]

    def item_seed(self, epoch: int, index: int) -> int:
        """Seed used while fetching item ``index`` in epoch ``epoch`` (rank-independent)."""
        state = np.random.SeedSequence([self.seed, epoch, index, 0x5EED]).generate_state(2)
        return int(state[0]) << 32 | int(state[1])

    def iterate(self, start: StreamPosition) -> Iterator[tuple[StreamPosition, int]]:
        """Infinite ``(position after the item, item index)`` stream from ``start``."""
        epoch, offset = start.epoch, start.offset
        if offset >= self.shard_length:
            epoch, offset = epoch + offset // self.shard_length, offset % self.shard_length
        while True:
            shard = self.shard(epoch)
            for j in range(offset, self.shard_length):
                yield StreamPosition(epoch, j + 1), int(shard[j])
            epoch, offset = epoch + 1, 0


class _SeededFetch(torch.utils.data.Dataset):
    """``fetch[(epoch, index, seed)] -> (index, item or BadItem)`` (picklable for workers)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[int, Any]:
        epoch, index, seed = key
        seed_cpu_generators(seed)  # the caller saves and restores the global states
        try:
            return index, self.dataset[index]
        except DataFileError as exc:
            return index, BadItem(index, str(exc.path), exc.reason, epoch)


class _Keys:
    """Iterable of fetch keys for the DataLoader (its ``sampler``)."""

    def __init__(self, order: DataOrder, start: StreamPosition) -> None:
        self.order, self.start = order, start

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for pos, index in self.order.iterate(self.start):
            epoch = pos.epoch
            yield epoch, index, self.order.item_seed(epoch, index)


def _identity(x: Any) -> Any:
    return x


def _worker_init(_worker_id: int) -> None:
    # Ctrl-C reaches the whole process group; only the main process handles it (it then stops at
    # a step boundary and shuts the workers down).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class BatchStream:
    """Batches of good items from a rank's stream, starting at a given position.

    Parameters
    ----------
    dataset : map-style dataset
        ``len(dataset)`` and ``dataset[i]``; may raise ``DataFileError`` for bad files.
    order : DataOrder
    start : StreamPosition
    batch_size : int
    skip_bad : bool
        Skip bad items (reported by :meth:`next_batch`) instead of raising.
    num_workers : int
        0: fetch in this process; > 0: through a DataLoader with that many workers.
    collate_fn : callable
        ``list of items -> batch``.
    """

    def __init__(
        self,
        dataset: Any,
        order: DataOrder,
        start: StreamPosition,
        batch_size: int,
        skip_bad: bool,
        num_workers: int,
        collate_fn: Callable[[list[Any]], Any],
    ) -> None:
        self.order = order
        self.position = start
        self.batch_size = batch_size
        self.skip_bad = skip_bad
        self.collate_fn = collate_fn
        fetch = _SeededFetch(dataset)
        positions = (pos for pos, _ in order.iterate(start))
        if num_workers == 0:
            items = (fetch[key] for key in _Keys(order, start))
            self._loader = None
        else:
            self._loader = torch.utils.data.DataLoader(
                fetch,
                sampler=_Keys(order, start),
                batch_size=None,
                collate_fn=_identity,
                num_workers=num_workers,
                worker_init_fn=_worker_init,
                # the base seed for workers comes from this generator, not from the global one,
                # so creating the loader does not shift the model-side random stream
                generator=torch.Generator().manual_seed(order.seed),
            )
            items = iter(self._loader)  # type: ignore[arg-type]  # torch types __iter__ loosely
        self._items = zip(positions, items, strict=False)

    def next_batch(self) -> tuple[Any, list[BadItem], StreamPosition]:
        """Fetch the next ``batch_size`` good items.

        Returns
        -------
        batch
            ``collate_fn(items)``.
        skipped : list of BadItem
            Bad items passed over (only with ``skip_bad``).
        position : StreamPosition
            Stream position after the last item consumed.

        Raises
        ------
        DataFileError
            For a bad item without ``skip_bad`` (naming the file).
        RuntimeError
            With ``skip_bad``, if a whole shard's worth of consecutive items is bad.
        """
        with preserved_cpu_rng():  # fetching in this process reseeds the global generators
            return self._next_batch()

    def _next_batch(self) -> tuple[Any, list[BadItem], StreamPosition]:
        items: list[Any] = []
        skipped: list[BadItem] = []
        consecutive_bad = 0
        while len(items) < self.batch_size:
            self.position, (_, item) = next(self._items)
            if isinstance(item, BadItem):
                if not self.skip_bad:
                    raise item.to_error()
                skipped.append(item)
                consecutive_bad += 1
                if consecutive_bad > self.order.shard_length:
                    raise RuntimeError(
                        f"{consecutive_bad} consecutive items failed to load (e.g. "
                        f"{item.path}: {item.reason}); no usable data left to skip to"
                    )
                continue
            consecutive_bad = 0
            items.append(item)
        return self.collate_fn(items), skipped, self.position

    def close(self) -> None:
        """Shut down worker processes (if any)."""
        self._items = zip((), (), strict=False)
        self._loader = None
