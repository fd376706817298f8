"""GPU discovery (nvidia-smi's output, MLPIPE_GPUS), disjoint allocation, and the too-many-GPUs message."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipe.executors.gpus import Gpu, GpuError, GpuPool, check_fits, discover, parse_nvidia_smi, why_no_gpus

FAKE_BIN = Path(__file__).parents[1] / "bin"
SMI = "0, NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15\n1, NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15\n"


def gpu(index: str) -> Gpu:
    return Gpu(index=index, name="NVIDIA Fake H100 80GB HBM3", memory_mib=81559, driver="550.54.15")


def test_parse_nvidia_smi():
    assert parse_nvidia_smi(SMI) == [
        Gpu(index="0", name="NVIDIA H100 80GB HBM3", memory_mib=81559, driver="550.54.15"),
        Gpu(index="1", name="NVIDIA H100 80GB HBM3", memory_mib=81559, driver="550.54.15"),
    ]
    assert parse_nvidia_smi("0, Tesla T4, [N/A], 535.1\n\nNo devices were found\n") == [
        Gpu(index="0", name="Tesla T4", memory_mib=None, driver="535.1")
    ]


def test_discover_with_the_stand_in_nvidia_smi():
    env = {"PATH": str(FAKE_BIN), "FAKE_GPUS": "3"}
    assert discover(env) == [gpu("0"), gpu("1"), gpu("2")]
    assert discover({**env, "MLPIPE_GPUS": "2,0"}) == [gpu("2"), gpu("0")]
    assert discover({**env, "MLPIPE_GPUS": ""}) == []
    with pytest.raises(GpuError) as error:
        discover({**env, "MLPIPE_GPUS": "0,7"})
    assert str(error.value) == "MLPIPE_GPUS names GPU 7, which nvidia-smi does not list (it lists 0, 1, 2)"


def test_discover_without_nvidia_smi(tmp_path):
    assert discover({"PATH": str(tmp_path)}) == []
    assert discover({"PATH": str(tmp_path), "MLPIPE_GPUS": "0,1"}) == [
        Gpu(index="0", name="unknown"),
        Gpu(index="1", name="unknown"),
    ]


def test_a_failing_nvidia_smi_is_an_error(tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed: driver mismatch' >&2\nexit 9\n")
    smi.chmod(0o755)
    with pytest.raises(GpuError) as error:
        discover({"PATH": str(tmp_path)})
    assert str(error.value) == "nvidia-smi exited 9: NVIDIA-SMI has failed: driver mismatch"


def test_pool_hands_out_disjoint_sets_and_takes_them_back():
    pool = GpuPool([gpu(str(i)) for i in range(4)])
    first = pool.take(2)
    second = pool.take(1)
    assert first == (gpu("0"), gpu("1")) and second == (gpu("2"),)
    assert pool.take(2) is None  # one free: the step waits
    assert pool.available() == 1
    pool.give_back(first)
    assert pool.take(3) == (gpu("0"), gpu("1"), gpu("3"))
    assert pool.available() == 0


def test_pool_orders_indices_numerically():
    pool = GpuPool([gpu(str(i)) for i in range(12)])
    taken = pool.take(12)
    assert taken is not None
    pool.give_back(list(reversed(taken)))
    assert [g.index for g in pool.take(3) or ()] == ["0", "1", "2"]


def test_check_fits_names_the_steps_and_the_runners_gpus():
    check_fits({"train": 2}, [gpu("0"), gpu("1")])
    with pytest.raises(GpuError) as error:
        check_fits({"train": 3, "eval": 1, "big": 4}, [gpu("0"), gpu("1")])
    assert str(error.value) == (
        "step 'train' needs 3 GPUs; step 'big' needs 4 GPUs, and this runner has 2 "
        "(GPU 0: NVIDIA Fake H100 80GB HBM3 81559 MiB; GPU 1: NVIDIA Fake H100 80GB HBM3 81559 MiB); "
        "run it on a runner with more GPUs, or lower its resources.gpus"
    )
    with pytest.raises(GpuError) as error:
        check_fits({"train": 1}, [])
    assert str(error.value) == (
        "step 'train' needs 1 GPU, and this runner has none (nvidia-smi found no GPU); "
        "run it on a runner with more GPUs, or lower its resources.gpus"
    )


def test_why_a_runner_has_no_gpus(tmp_path):
    assert why_no_gpus({"PATH": str(tmp_path), "MLPIPE_GPUS": ""}) == "MLPIPE_GPUS is empty"
    assert why_no_gpus({"PATH": str(tmp_path)}) == "no nvidia-smi on PATH"
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n")
    smi.chmod(0o755)
    assert why_no_gpus({"PATH": str(tmp_path)}) == "nvidia-smi found no GPU"
