"""The docs site (docs/, mkdocs.yml): it builds strictly, its commands still parse, its examples run as printed,
and its tables of recipes and batched ids match the code."""

import argparse
import contextlib
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
import tomllib
from unittest import mock

import pytest

from torch_rl.envs import SUPPORTED_ENV_IDS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")
PAGES = sorted(
    os.path.join(root, name) for root, _, names in os.walk(DOCS) for name in names if name.endswith(".md")
) + [os.path.join(REPO, "README.md")]

# A command as the docs show it: `python -m scripts.train ...`, `torchrun ... -m scripts.train ...`, or a mention
# such as `scripts.evaluate --best` (flags only, without the required ones).
COMMAND = re.compile(r"(?P<module>(?:scripts|benchmarks)\.[a-z_]+)(?P<args>(?: +[^ `]+)*)")
PLACEHOLDERS = {
    "ENV": "MiniGrid-DoorKey-5x5-v0",
    "ID": "MiniGrid-DoorKey-5x5-v0",
    "NAME": "DoorKey",
    "FILE": "out.json",
    "FILE.png": "out.png",
    "N": "16",
    "S": "1",
    "10000+S": "10001",
}


def code_spans(text):
    """The lines of fenced code blocks and the inline code spans of a Markdown page."""
    spans, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            spans.append(line.strip().removeprefix("$ ").removeprefix("# "))
        else:
            spans.extend(re.findall(r"`([^`]+)`", line))
    return spans


def concrete(args):
    """A table's synopsis made runnable: placeholders filled, the first of alternatives, optional brackets off."""
    out = []
    for token in shlex.split(args):
        token = token.strip("[]")
        if token in ("...", "…", "") or token.startswith("#"):
            continue
        if re.fullmatch(r"\{[^}]+\}", token):
            token = token[1:-1].split(",")[0]
        elif "|" in token and not token.startswith("-"):
            token = token.split("|")[0]
        out.append(PLACEHOLDERS.get(token, token))
    return out


def shown_commands():
    found = set()
    for page in PAGES:
        for span in code_spans(open(page, encoding="utf-8").read()):
            span = span.split(" # ")[0].split("&&")[-1]
            for m in COMMAND.finditer(span):
                args = " ".join(t for t in m.group("args").split() if t not in ("...", "…"))
                found.add((os.path.relpath(page, REPO), m.group("module"), args))
    return sorted(found)


COMMANDS = shown_commands()


class _Parsed(Exception):
    def __init__(self, parser, argv, namespace):
        super().__init__()
        self.parser, self.argv, self.namespace = parser, argv, namespace


def parse(module_name, argv, parse_it):
    """Runs the module's main() until its argument parser has read ``argv`` (no work is done after that); returns
    the parser and the arguments it was given (``benchmarks.learning --suite`` hands the rest to the suite's
    parser). With ``parse_it`` False, they are returned before the parser reads anything."""
    real = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        argv = sys.argv[1:] if args is None else list(args)
        raise _Parsed(self, argv, real(self, args, namespace) if parse_it else None)

    module = importlib.import_module(module_name)
    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", capture),
        mock.patch.object(sys, "argv", [module_name, *argv]),
        pytest.raises(_Parsed) as parsed,
    ):
        try:
            module.main(argv)
        except TypeError:  # a main() that reads sys.argv
            module.main()
    return parsed.value.parser, parsed.value.argv


def test_the_docs_show_commands_of_every_starter_script():
    modules = {module for _, module, _ in COMMANDS}
    assert {"scripts.train", "scripts.evaluate", "scripts.visualize", "scripts.plot"} <= modules
    assert len(COMMANDS) > 40


@pytest.mark.parametrize(("page", "module", "args"), COMMANDS, ids=lambda v: str(v)[:60])
def test_a_command_shown_in_the_docs_parses(page, module, args):
    argv = concrete(args)
    parser, given = parse(module, argv, parse_it=False)
    flags = {token.split("=")[0] for token in given if re.match(r"--?[a-zA-Z]", token)}
    unknown = flags - set(parser._option_string_actions)
    assert not unknown, f"{page} shows {module} with flags it does not have: {sorted(unknown)}"
    required = [a.option_strings for a in parser._actions if a.required]
    if all(set(options) & flags for options in required):  # a whole command line: it parses, values included
        parse(module, argv, parse_it=True)
    # else a mention in the prose (`scripts.evaluate --best`): its flags exist


@pytest.mark.parametrize(
    "module", ["scripts.train", "scripts.evaluate", "scripts.visualize", "scripts.plot", "scripts.export"]
)
def test_every_script_lists_the_exit_codes_at_the_end_of_its_help(module):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        importlib.import_module(module).main(["--help"])
    assert exit_.value.code == 0
    tail = out.getvalue()[-600:]
    for code in ("0", "1", "2", "130"):
        assert re.search(rf"^\s*{code}\b", tail, re.M), f"{module} --help does not end with exit code {code}"


def python_blocks(page):
    text = open(os.path.join(DOCS, page), encoding="utf-8").read()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def run_example(code, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
    return out.getvalue().strip().splitlines()


def test_the_cartpole_example_learns_above_195(tmp_path, monkeypatch):
    (code,) = [block for block in python_blocks("library.md") if "CartPole-v1" in block]
    assert "torch_rl.PPOAlgo" in code
    assert float(run_example(code, "library.md", tmp_path, monkeypatch)[-1]) > 195


def test_the_complete_example_of_your_own_env_and_model_learns(tmp_path, monkeypatch):
    (code,) = [block for block in python_blocks("library.md") if "class FindTheGoal(gym.Env)" in block]
    lines = run_example(code, "library.md", tmp_path, monkeypatch)
    assert lines[-1].startswith("success rate ")
    assert float(lines[-1].split()[-1]) >= 0.9
    assert (tmp_path / "find_the_goal.pt").is_file()


def table_rows(page, header):
    """The rows of the table whose header line starts with ``header``, as lists of cells."""
    lines = open(os.path.join(DOCS, page), encoding="utf-8").read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_id_table_lists_every_supported_minigrid_id_once_and_the_counts_are_right():
    rows = table_rows("batched-envs.md", "| id (`MiniGrid-…`)")
    ids = ["MiniGrid-" + row[0] for row in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == {env_id for env_id in SUPPORTED_ENV_IDS if env_id.startswith("MiniGrid-")}
    babyai = [env_id for env_id in SUPPORTED_ENV_IDS if env_id.startswith("BabyAI-")]
    text = open(os.path.join(DOCS, "batched-envs.md"), encoding="utf-8").read()
    assert len(ids) == 82 and len(babyai) == 96  # every id Minigrid 3.2 registers
    assert f"**all {len(ids)} registered `MiniGrid-*` ids and all {len(babyai)} `BabyAI-*` ids**" in text
    assert f"({len(SUPPORTED_ENV_IDS)} ids in" in text


def recipe_row(env_id, recipe):
    explore = recipe.get("explore", "none")
    if "explore_coef" in recipe:
        explore += f" ({recipe['explore_coef']})"
    return [
        f"`{env_id}`",
        str(recipe.get("procs")),
        "yes" if recipe.get("batched") else "no",
        str(recipe.get("recurrence", 1)),
        "yes" if recipe.get("text") else "no",
        explore,
        str(recipe.get("entropy_coef")),
        recipe.get("lr_schedule", "constant"),
        f"{recipe.get('frames'):,}",
    ]


def test_the_recipes_table_matches_recipes_ppo_toml():
    with open(os.path.join(REPO, "recipes", "ppo.toml"), "rb") as f:
        recipes = tomllib.load(f)
    expected = [recipe_row(env_id, recipe) for env_id, recipe in recipes.items()]
    assert table_rows("exploration.md", "| env id | envs |") == expected, "update the table in docs/exploration.md"
    shared = {(r.get("frames_per_proc"), r.get("lr"), r.get("epochs"), r.get("batch_size")) for r in recipes.values()}
    assert shared == {(128, 0.001, 4, 256)}  # the page says all recipes share these


def test_mkdocs_build_is_strict_and_succeeds(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "algos" / "index.html").read_text().count("PPOAlgo") > 1
