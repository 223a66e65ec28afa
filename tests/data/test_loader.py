"""The in-RAM BatchLoader: epoch coverage, (seed, epoch)-determined order, drop_last, DDP sharding, scaling."""
from __future__ import annotations

import pytest
import torch

from pae.data.loader import BatchLoader, to_float, to_uint8


def images(n=50, shape=(1, 4, 4), seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def order(loader: BatchLoader) -> list[int]:
    return torch.cat(list(loader.indices())).tolist()


def test_shuffled_epoch_yields_every_index_once():
    loader = BatchLoader(images(50), 8, shuffle=True, seed=1)
    batches = list(loader.indices())
    assert len(batches) == len(loader) == 7
    assert [len(b) for b in batches] == [8] * 6 + [2]
    got = order(loader)
    assert sorted(got) == list(range(50))
    assert got != list(range(50))  # actually shuffled


def test_unshuffled_order_is_sequential():
    assert order(BatchLoader(images(13), 4, shuffle=False)) == list(range(13))


def test_order_depends_only_on_seed_and_epoch():
    a = BatchLoader(images(50), 8, shuffle=True, seed=3)
    b = BatchLoader(images(50, seed=9), 8, shuffle=True, seed=3)  # other pixels, same seed
    for loader in (a, b):
        loader.set_epoch(2)
    assert order(a) == order(b)
    assert order(a) == order(a)  # iterating again does not advance any state
    b.set_epoch(3)
    assert order(a) != order(b)
    c = BatchLoader(images(50), 8, shuffle=True, seed=4)
    c.set_epoch(2)
    assert order(a) != order(c)


def test_order_independent_of_global_rng():
    loader = BatchLoader(images(50), 8, shuffle=True, seed=0)
    torch.manual_seed(1)
    first = order(loader)
    torch.manual_seed(2)
    assert order(loader) == first


def test_drop_last_drops_the_remainder():
    loader = BatchLoader(images(50), 8, shuffle=True, drop_last=True)
    batches = list(loader.indices())
    assert len(batches) == len(loader) == 6
    assert all(len(b) == 8 for b in batches)
    assert len(set(torch.cat(batches).tolist())) == 48
    assert sum(len(x) for x in loader) == 48


def test_shards_concatenate_to_the_global_batch():
    data = images(50)
    ranks = [BatchLoader(data, 8, shuffle=True, seed=5, rank=r, world_size=2, drop_last=True) for r in range(2)]
    single = BatchLoader(data, 8, shuffle=True, seed=5, world_size=1, drop_last=True)
    for loader in ranks + [single]:
        loader.set_epoch(1)
    r0, r1, whole = list(ranks[0].indices()), list(ranks[1].indices()), list(single.indices())
    assert len(r0) == len(r1) == len(whole) == 6
    for a, b, g in zip(r0, r1, whole):
        assert len(a) == len(b) == 4
        assert torch.cat([a, b]).tolist() == g.tolist()


def test_shards_without_drop_last_still_cover_everything():
    data = images(21)
    per_rank = [list(BatchLoader(data, 4, shuffle=True, rank=r, world_size=2).indices()) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1])  # every rank steps through the same number of batches
    assert sorted(torch.cat(per_rank[0] + per_rank[1]).tolist()) == list(range(21))


def test_shard_images_match_indices():
    data = images(20)
    loader = BatchLoader(data, 4, shuffle=True, rank=1, world_size=2)
    for idx, x in zip(loader.indices(), loader):
        assert torch.equal(to_uint8(x), data[idx])


def test_batch_size_not_divisible_by_world_size():
    with pytest.raises(ValueError, match="divisible"):
        BatchLoader(images(10), 5, shuffle=False, world_size=2)


def test_rejects_non_uint8_images():
    with pytest.raises(ValueError, match="uint8"):
        BatchLoader(images(10).float(), 5, shuffle=False)


def test_values_float32_in_half_range():
    data = torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.uint8).view(6, 1, 1, 1)
    (x,) = list(BatchLoader(data, 6, shuffle=False))
    assert x.dtype == torch.float32 and x.shape == (6, 1, 1, 1)
    assert x.min() == -0.5 and x.max() == 0.5
    assert torch.all((x >= -0.5) & (x <= 0.5))
    for x in BatchLoader(images(40, (3, 5, 5)), 16, shuffle=True):
        assert x.dtype == torch.float32 and -0.5 <= x.min() and x.max() <= 0.5


def test_to_uint8_inverts_to_float():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(to_uint8(to_float(x)), x)
    assert to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]  # clamped


def test_channels_last_flag():
    data = images(12, (3, 5, 6))
    (plain,) = list(BatchLoader(data, 12, shuffle=False))
    (cl,) = list(BatchLoader(data, 12, shuffle=False, channels_last=True))
    assert cl.is_contiguous(memory_format=torch.channels_last) and not cl.is_contiguous()
    assert plain.is_contiguous()
    assert torch.equal(cl, plain)
