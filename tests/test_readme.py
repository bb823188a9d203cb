"""The README's library example runs as printed and does what its comment says."""

import contextlib
import io
import os

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_readme_library_example_learns_cartpole_above_195():
    text = open(README).read()
    start = text.index("```python\n") + len("```python\n")
    code = text[start : text.index("```", start)]
    assert "torch_rl.PPOAlgo" in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert float(out.getvalue().strip().splitlines()[-1]) > 195
