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
