"""benchmarks.peers: a peer whose libraries are absent is skipped with one line and exit status 0."""

import os
import subprocess
import sys

from benchmarks.peers.rejax_ppo import SKIP_LINE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# jax is made unimportable (a None entry in sys.modules), so the skip is tested whether or not it is installed.
WITHOUT_JAX = (
    "import runpy, sys; sys.modules['jax'] = None; "
    "sys.argv = ['rejax_ppo', '--envs', '16', '--frames', '1000', '--json']; "
    "runpy.run_module('benchmarks.peers.rejax_ppo', run_name='__main__')"
)


def test_rejax_peer_without_jax_prints_one_skip_line_and_exits_0():
    out = subprocess.run([sys.executable, "-c", WITHOUT_JAX], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == SKIP_LINE + "\n"
    assert out.stderr == ""


def test_the_training_sweep_measures_a_setting_and_splits_its_time():
    """The sweep's measurement itself (in-process, a tiny setting): frames per second, and the time of an update
    split into collecting and updating, which must add up to about the measured wall time."""
    import torch

    from benchmarks.training_sweep import measure

    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng():  # measure seeds torch and sets its threads: neither leaks into other tests
            result = measure("mlp", "4x8", "eager", seconds=0.3, device="cpu", threads=1)
    finally:
        torch.set_num_threads(threads)
    assert result["fps"] > 0 and result["compile_s"] == 0
    assert result["collect_ms"] > 0 and result["update_ms"] > 0
    seconds_per_update = 4 * 8 / result["fps"]
    assert 0.5 < (result["collect_ms"] + result["update_ms"]) / 1000 / seconds_per_update <= 1.0 + 1e-9


def test_the_conv_layer_benchmark_times_both_layers_on_both_cases(capsys):
    import torch

    from benchmarks.conv_layers import main

    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng():  # it seeds torch and sets its threads: neither leaks into other tests
            main(["--quick"])
    finally:
        torch.set_num_threads(threads)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[0] for row in rows] == ["forward,", "forward+backward,"]
    assert all(float(row[-3]) > 0 and float(row[-2]) > 0 and row[-1].endswith("x") for row in rows)
