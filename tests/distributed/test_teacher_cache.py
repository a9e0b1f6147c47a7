"""The sharded teacher-output cache, in one process: the shards two ranks would write,
read back by example index, and every kind of bad file refused with the way to rebuild."""
from __future__ import annotations

import shutil

import pytest
import torch

from kdteach import losses, models, teacher_cache
from kdteach.data import DeviceLoader, Split
from kdteach.teacher_cache import TeacherCache, TeacherCacheError


@pytest.fixture(scope="module")
def setting():
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randn(53, 1, 4, 4, generator=g), torch.randint(0, 10, (53,), generator=g))
    torch.manual_seed(1)
    teacher = models.MLP((16, 24, 10))
    with torch.no_grad():
        logits = teacher(split.images)
    return split, teacher, logits, teacher_cache.fingerprint(teacher, split)


def write(directory, setting, *, kind="topk", k=3, world=2, name="t"):
    split, teacher, _, fp = setting
    return [teacher_cache.write_shard(teacher, split, directory, name, kind=kind, k=k, rank=r,
                                      world_size=world, batch_size=5, fp=fp)
            for r in range(world)]


def open_cache(directory, setting, **kw):
    split, _, _, fp = setting
    kw = {"kind": "topk", "k": 3, "fingerprint": fp, "n": len(split), **kw}
    return TeacherCache(directory, "t", **kw)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_topk_shards_read_back_by_index_in_a_shuffled_sharded_order(tmp_path, setting, world):
    split, _, logits, _ = setting
    paths = write(tmp_path, setting, world=world)
    assert [p.name for p in paths] == [f"t.rank{r}-of-{world}.kdtc" for r in range(world)]
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: no temporaries left
    cache = open_cache(tmp_path, setting)
    top = torch.log_softmax(logits, 1).topk(3, dim=1)
    for rank in (0, 1):
        for _, _, idx in DeviceLoader(split, 4, seed=9, rank=rank, world_size=2).batches():
            logp, classes, rest = cache.lookup(idx)
            assert torch.equal(classes, top.indices[idx])
            torch.testing.assert_close(logp, top.values[idx], atol=2e-3, rtol=1e-3)
            torch.testing.assert_close(rest, 1 - top.values[idx].exp().sum(1), atol=1e-5, rtol=0)


def test_full_logits_read_back_and_k_equal_v_gives_kd_loss(tmp_path, setting):
    split, _, logits, _ = setting
    write(tmp_path, setting, kind="full", k=None)
    cache = open_cache(tmp_path, setting, kind="full", k=None)
    idx = torch.randperm(len(split))
    got = cache.lookup(idx)
    torch.testing.assert_close(got, logits[idx].half().float())
    assert cache.bytes_on_disk() >= len(split) * teacher_cache.bytes_per_example("full", 10)
    write(tmp_path, setting, kind="topk", k=10, name="t10")
    lp, classes, _ = TeacherCache(tmp_path, "t10", n=len(split), kind="topk", k=10,
                                  fingerprint=setting[3]).lookup(idx)
    student = torch.randn(len(idx), 10)
    torch.testing.assert_close(losses.topk_kd_loss(student, lp, classes, T=4.0),
                               losses.kd_loss(student, logits[idx], T=4.0), atol=1e-3, rtol=1e-3)


def test_bytes_per_example():
    assert teacher_cache.bytes_per_example("full", 10) == 20
    assert teacher_cache.bytes_per_example("topk", 10, 1) == 8  # fp16 + int16 + the rest (fp32)
    assert teacher_cache.bytes_per_example("topk", 50_257, 10) == 64  # int32 indices past 32767
    assert teacher_cache.bytes_per_example("full", 50_257) == 100_514


def test_a_truncated_file_is_refused_with_how_to_rebuild(tmp_path, setting):
    paths = write(tmp_path, setting)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:-10])
    with pytest.raises(TeacherCacheError, match=r"rank1-of-2\.kdtc is \d+ bytes but its header "
                                                r"describes \d+ \(a truncated.*Rebuild it"):
        open_cache(tmp_path, setting)
    paths[1].write_bytes(data[:30])  # cut inside the header
    with pytest.raises(TeacherCacheError, match="truncated or unreadable header.*Rebuild it"):
        open_cache(tmp_path, setting)
    paths[1].write_bytes(b"")
    with pytest.raises(TeacherCacheError, match="not a teacher-output cache file.*Rebuild it"):
        open_cache(tmp_path, setting)


def test_a_cache_of_another_teacher_data_or_k_is_refused(tmp_path, setting):
    split, teacher, _, fp = setting
    write(tmp_path, setting)
    other = models.MLP((16, 24, 10))
    with pytest.raises(TeacherCacheError, match="made by another teacher or from other data.*Rebuild it"):
        open_cache(tmp_path, setting, fingerprint=teacher_cache.fingerprint(other, split))
    shifted = Split(split.images + 1, split.labels)
    with pytest.raises(TeacherCacheError, match="another teacher or from other data"):
        open_cache(tmp_path, setting, fingerprint=teacher_cache.fingerprint(teacher, shifted))
    with pytest.raises(TeacherCacheError, match="k: file has 3, expected 5"):
        open_cache(tmp_path, setting, k=5)
    with pytest.raises(TeacherCacheError, match="kind: file has 'topk', expected 'full'"):
        open_cache(tmp_path, setting, kind="full", k=None)
    with pytest.raises(TeacherCacheError, match="n: file has 53, expected 52"):
        open_cache(tmp_path, setting, n=52)
    assert fp == teacher_cache.fingerprint(teacher, split)  # deterministic


def test_missing_or_mixed_shards_are_refused(tmp_path, setting):
    with pytest.raises(TeacherCacheError, match="No teacher-output cache 't'.*Rebuild it"):
        open_cache(tmp_path, setting)
    paths = write(tmp_path, setting, world=2)
    paths[0].unlink()
    with pytest.raises(TeacherCacheError, match=r"Shards missing.*rank0-of-2"):
        open_cache(tmp_path, setting)
    write(tmp_path, setting, world=3)
    with pytest.raises(TeacherCacheError, match=r"jobs of different sizes \[2, 3\]"):
        open_cache(tmp_path, setting)
    shutil.rmtree(tmp_path)


def test_lookup_and_writer_bad_arguments(tmp_path, setting):
    split, teacher, _, _ = setting
    write(tmp_path, setting)
    cache = open_cache(tmp_path, setting)
    with pytest.raises(ValueError, match=r"indices must be example indices in \[0, 53\)"):
        cache.lookup(torch.tensor([0, 53]))
    with pytest.raises(ValueError, match="indices must be 1-D"):
        cache.lookup(torch.zeros(2, 2, dtype=torch.long))
    bad = [({"kind": "logits"}, "kind must be"), ({"k": 11}, "k=11 is more than the teacher's 10"),
           ({"rank": 2, "world_size": 2}, "rank must be"), ({"k": 0}, "k must be a positive int")]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            teacher_cache.write_shard(teacher, split, tmp_path, "x", **kwargs)
    with pytest.raises(ValueError, match="name="):
        teacher_cache.write_shard(teacher, split, tmp_path, "../x")
