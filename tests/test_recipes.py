"""Recipes: the shipped file is valid and consistent, and a bad file ends in one line naming the key."""

import os

import pytest

from utils.env import check_env_id
from utils.errors import UsageError
from utils.recipes import RECIPE_KEYS, describe, load_recipes, recipe_for, recipes_path


def test_the_shipped_ppo_recipes_are_valid_and_fit_the_algorithm():
    recipes = load_recipes(recipes_path("ppo"))
    assert {"MiniGrid-DoorKey-5x5-v0", "MiniGrid-MemoryS11-v0", "MiniGrid-GoToDoor-5x5-v0"} <= set(recipes)
    for env_id, recipe in recipes.items():
        check_env_id(env_id)  # a registered id
        assert recipe["frames_per_proc"] % recipe["recurrence"] == 0, env_id
        assert recipe["batch_size"] % recipe["recurrence"] == 0, env_id
        assert "frames" in recipe, env_id
    assert recipes["MiniGrid-MemoryS11-v0"]["recurrence"] == 32  # what docs/RESULTS.md measured
    assert recipes["MiniGrid-GoToDoor-5x5-v0"]["text"] is True
    assert recipes["MiniGrid-DoorKey-8x8-v0"]["batched"] is True


def test_an_unknown_env_has_no_recipe_and_a_missing_file_no_recipes(tmp_path):
    assert recipe_for("ppo", "MiniGrid-Empty-5x5-v0") is None
    assert load_recipes(str(tmp_path / "none.toml")) == {}


BAD_FILES = {
    # case: (file text, words the one-line error holds)
    "unknown key": ('["E-v0"]\nlearning_rate = 0.1\n', ["E-v0", "unknown key 'learning_rate'"]),
    "negative lr": ('["E-v0"]\nlr = -1\n', ["E-v0", "lr", "more than 0", "-1"]),
    "zero lr": ('["E-v0"]\nlr = 0\n', ["lr", "more than 0"]),
    "procs a float": ('["E-v0"]\nprocs = 1.5\n', ["procs", "integer", "1.5"]),
    "procs a bool": ('["E-v0"]\nprocs = true\n', ["procs", "integer"]),
    "frames zero": ('["E-v0"]\nframes = 0\n', ["frames", "from 1 to", "got 0"]),
    "procs a string": ('["E-v0"]\nprocs = "lots"\n', ["procs", "integer", "got 'lots'"]),
    "discount above 1": ('["E-v0"]\ndiscount = 1.5\n', ["discount", "from 0 to 1", "got 1.5"]),
    # the ranges are the flags' own (utils.train_args), not only "finite"
    "lr huge": ('["E-v0"]\nlr = 1e39\n', ["lr", "more than 0 and at most 1", "got 1e+39"]),
    "epochs huge": ('["E-v0"]\nepochs = 1000000\n', ["epochs", "from 1 to 1000", "got 1000000"]),
    "entropy_coef huge": ('["E-v0"]\nentropy_coef = 1e308\n', ["entropy_coef", "from 0 to 100"]),
    "text a string": ('["E-v0"]\ntext = "yes"\n', ["text", "true or false"]),
    "compile a number": ('["E-v0"]\ncompile = 1\n', ["compile", "true or false", "got 1"]),
    "unknown bonus": ('["E-v0"]\nexplore = "curiosity"\n', ["explore", "rnd, count, episodic, noveld, both"]),
    "coef without bonus": ('["E-v0"]\nexplore = "none"\nexplore_coef = 0.1\n', ["explore_coef"]),
    "nan": ('["E-v0"]\nlr = nan\n', ["lr", "finite"]),
    "not a table": ("lr = 0.1\n", ["'lr' is not a table"]),
    "not TOML": ('["E-v0"\nlr = 0.1\n', ["not valid TOML"]),
    "not UTF-8": (b'["E-v0"]\nlr = 0.1 # \xff\xfe\n', ["not UTF-8", "byte offset 20"]),
    "a FIFO (opening it would block)": (os.mkfifo, ["not a regular file"]),
    "a folder": (os.mkdir, ["not a regular file"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_recipe_file_is_one_line_naming_the_file_and_key(case, tmp_path):
    text, fragments = BAD_FILES[case]
    path = tmp_path / "ppo.toml"
    if callable(text):
        text(path)
    else:
        path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(UsageError) as error:
        load_recipes(str(path))
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_every_recipe_key_is_a_flag_of_scripts_train(capsys):
    from utils.train_args import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"], description="")
    help_text = capsys.readouterr().out
    assert [key for key in RECIPE_KEYS if "--" + key.replace("_", "-") + " " not in help_text] == []


def test_describe_writes_a_recipe_as_flags():
    assert describe({"procs": 64, "lr": 0.001, "batched": True, "text": False, "explore": "rnd"}) == (
        "--procs 64 --lr 0.001 --batched --explore rnd"
    )
