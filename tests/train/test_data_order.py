"""Data order: per-epoch permutations, sharding, positions, seeded item fetching."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch

from matbackprop.errors import DataFileError
from matbackprop.train import DataOrder, StreamPosition
from matbackprop.train._data import BatchStream


def test_permutations_are_seeded_and_change_per_epoch():
    order = DataOrder(20, seed=5)
    p0, p1 = order.permutation(0), order.permutation(1)
    assert sorted(p0.tolist()) == list(range(20))
    assert not np.array_equal(p0, p1)
    assert np.array_equal(p0, DataOrder(20, seed=5).permutation(0))
    assert not np.array_equal(p0, DataOrder(20, seed=6).permutation(0))


@pytest.mark.parametrize(("n", "world"), [(10, 2), (11, 3), (5, 4)])
def test_shards_cover_the_epoch(n, world):
    shards = [DataOrder(n, seed=1, rank=r, world_size=world).shard(3) for r in range(world)]
    length = -(-n // world)
    assert all(len(s) == length for s in shards)
    merged = np.stack(shards, axis=1).reshape(-1)  # interleave back: rank r took r::world
    perm = DataOrder(n, seed=1).permutation(3)
    assert np.array_equal(merged[:n], perm)
    assert set(merged.tolist()) == set(range(n))
    if n % world == 0:  # no padding: shards are disjoint
        assert len(set(merged.tolist())) == n


def test_iterate_from_a_position_is_the_tail():
    order = DataOrder(7, seed=3)
    full = list(itertools.islice(order.iterate(StreamPosition()), 30))
    for k in (0, 3, 7, 12, 29):
        start = full[k - 1][0] if k else StreamPosition()
        tail = list(itertools.islice(order.iterate(start), 30 - k))
        assert tail == full[k:]
    # epochs concatenate
    assert [i for _, i in full[:7]] == order.shard(0).tolist()
    assert [i for _, i in full[7:14]] == order.shard(1).tolist()


def _collect(stream, n):
    out = []
    for _ in range(n):
        batch, skipped, pos = stream.next_batch()
        out.append((batch, [s.index for s in skipped], pos))
    return out


def test_resuming_a_stream_skips_without_reading(toy_dataset):
    ds = toy_dataset(n=9)
    order = DataOrder(len(ds), seed=0)
    full = _collect(BatchStream(ds, order, StreamPosition(), 2, False, 0, list), 6)
    ds.calls.clear()
    pos = full[2][2]
    resumed = _collect(BatchStream(ds, order, pos, 2, False, 0, list), 3)
    assert len(ds.calls) == 6  # only the 3 batches read, nothing before `pos`
    for (a, _, pa), (b, _, pb) in zip(full[3:], resumed, strict=True):
        assert pa == pb
        assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b, strict=True))


def test_item_noise_is_seeded_per_item_and_leaves_global_rng_alone(toy_dataset):
    ds = toy_dataset(n=6)
    order = DataOrder(len(ds), seed=0)
    torch.manual_seed(0)
    random.seed(0)
    before = (torch.rand(1), random.random())
    torch.manual_seed(0)
    random.seed(0)
    first = _collect(BatchStream(ds, order, StreamPosition(), 3, False, 0, list), 2)
    after = (torch.rand(1), random.random())
    assert torch.equal(before[0], after[0]) and before[1] == after[1]
    torch.manual_seed(123)  # a different global state must not change the items
    again = _collect(BatchStream(ds, order, StreamPosition(), 3, False, 0, list), 2)
    for (a, _, _), (b, _, _) in zip(first, again, strict=True):
        assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b, strict=True))


def test_workers_give_the_same_items(toy_dataset):
    ds = toy_dataset(n=8, bad=(3,))
    order = DataOrder(len(ds), seed=2)
    main = _collect(BatchStream(ds, order, StreamPosition(), 3, True, 0, list), 4)
    stream = BatchStream(ds, order, StreamPosition(), 3, True, 2, list)
    workers = _collect(stream, 4)
    stream.close()
    for (a, sa, pa), (b, sb, pb) in zip(main, workers, strict=True):
        assert pa == pb and sa == sb
        assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    assert any(s for _, s, _ in main)  # the bad item was met and skipped


def test_bad_item_raises_without_skip_and_all_bad_is_detected(toy_dataset):
    ds = toy_dataset(n=4, bad=(0, 1, 2, 3))
    order = DataOrder(len(ds), seed=0)
    with pytest.raises(DataFileError, match="broken_") as info:
        BatchStream(ds, order, StreamPosition(), 2, False, 0, list).next_batch()
    assert str(info.value.path).startswith("/data/broken_")
    with pytest.raises(RuntimeError, match="consecutive items failed"):
        BatchStream(ds, order, StreamPosition(), 2, True, 0, list).next_batch()


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_items"):
        DataOrder(0, seed=0)
    with pytest.raises(ValueError, match="rank"):
        DataOrder(5, seed=0, rank=2, world_size=2)
