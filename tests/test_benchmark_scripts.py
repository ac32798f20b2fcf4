"""The GPU script stays runnable: CI has no GPU, so its dry run exercises every step on the CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_gpu_script_dry_run_on_the_cpu():
    out = subprocess.run(
        [sys.executable, str(BENCH / "bench_gpu.py"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "checks passed" in out.stdout
    assert "Hess UNet float32 batch 4" in out.stdout and "radar-8x bfloat16" in out.stdout


def test_gpu_script_without_a_gpu_says_so_and_exits_0():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run for minutes")
    out = subprocess.run(
        [sys.executable, str(BENCH / "bench_gpu.py")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0
    assert "no CUDA device" in out.stdout and "--dry-run" in out.stdout
