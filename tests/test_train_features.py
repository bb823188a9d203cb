"""scripts.train's learning features (issue 17): evaluation during training and the best model, --stop-at-return
on the evaluations, the linear learning-rate schedule, the exploration bonus, recipes, and resuming with the
settings a model was made with. Each run is a few tiny updates on CartPole (DoorKey for the shipped recipe)."""

import csv

import pytest
import torch

from utils import recipes

TRAIN = ["--algo", "ppo", "--env", "CartPole-v1", "--model", "m", "--workers", "0", "--quiet"]
TINY = ["--procs", "2", "--frames-per-proc", "16", "--batch-size", "16", "--epochs", "1"]
FRAMES_PER_UPDATE = 2 * 16


@pytest.fixture
def storage(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)


def train(*flags, updates=4):
    from scripts.train import main

    main([*TRAIN, *TINY, "--frames", str(updates * FRAMES_PER_UPDATE), *flags])


def rows(storage, model="m"):
    with open(storage / model / "log.csv") as f:
        return list(csv.DictReader(f))


def status(storage, name="status.pt", model="m"):
    return torch.load(storage / model / name, weights_only=True)


def log_text(storage, model="m"):
    return (storage / model / "log.txt").read_text()


# ------------------------------------------------------------------------------------------------- evaluation
def test_evaluation_is_logged_every_n_updates_and_the_best_model_is_kept(storage):
    train("--eval-interval", "2", "--eval-episodes", "3", "--tb", updates=5)
    logged = rows(storage)
    assert [row["update"] for row in logged] == ["1", "2", "3", "4", "5"]
    evaluated = [row for row in logged if row["eval_return_mean"] != ""]
    assert [row["update"] for row in evaluated] == ["2", "4"]
    for row in evaluated:  # CartPole: every step earns 1, so every episode "succeeds"
        assert float(row["eval_return_mean"]) == pytest.approx(float(row["eval_num_frames_mean"]))
        assert float(row["eval_success_rate"]) == 1.0
    best = max(float(row["eval_return_mean"]) for row in evaluated)
    assert status(storage, "status_best.pt")["best_eval_return"] == pytest.approx(best)
    assert status(storage)["best_eval_return"] == pytest.approx(best)  # a resumed run compares against it
    text = log_text(storage)
    assert text.count(" | eval R ") == 2 and "saved as status_best.pt" in text

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(storage / "m"))
    events.Reload()
    for tag in ("eval_return_mean", "eval_success_rate", "eval_num_frames_mean"):
        assert [event.step for event in events.Scalars(tag)] == [2 * FRAMES_PER_UPDATE, 4 * FRAMES_PER_UPDATE]


def test_the_best_checkpoint_is_the_model_of_the_best_evaluation(storage):
    train("--eval-interval", "1", "--eval-episodes", "2", updates=4)
    evaluated = [float(row["eval_return_mean"]) for row in rows(storage)]
    best_update = 1 + max(range(len(evaluated)), key=lambda i: (evaluated[i], -i))  # the first of the best
    assert status(storage, "status_best.pt")["update"] == best_update


def test_stop_at_return_acts_on_the_evaluation_when_evaluating(storage):
    # A random CartPole policy lasts ~20 steps: the evaluation reaches 5 at once, the training returns would too,
    # but only after 5 logged updates; with evaluation the run stops at the first one (update 3).
    train("--eval-interval", "3", "--eval-episodes", "2", "--stop-at-return", "5", updates=20)
    assert [row["update"] for row in rows(storage)][-1] == "3"
    assert "reached --stop-at-return 5" in log_text(storage)
    assert status(storage)["update"] == 3


# ---------------------------------------------------------------------------------------------- lr schedule
def test_a_linear_schedule_reaches_zero_at_the_frame_budget_and_resumes_where_it_stopped(storage):
    train("--lr-schedule", "linear", "--lr", "0.004", updates=4)
    uninterrupted = [float(row["lr"]) for row in rows(storage)]
    assert uninterrupted == pytest.approx([0.004, 0.003, 0.002, 0.001])
    assert status(storage)["optimizer_state"]["param_groups"][0]["lr"] == 0


def test_a_resumed_schedule_continues_where_it_stopped(storage, monkeypatch):
    from scripts.train import main

    flags = [*TRAIN, *TINY, "--lr", "0.004", "--lr-schedule", "linear", "--frames", str(4 * FRAMES_PER_UPDATE)]
    main([*flags, "--model", "whole"])
    whole = [float(row["lr"]) for row in rows(storage, "whole")]
    # Stop the second run after 2 updates, as Ctrl-C would (the model is saved), then resume it.
    import utils.training

    real_update = utils.training.Trainer.update

    def stop_after_two(self):
        stop = real_update(self)
        if self.checkpoint.update == 2:
            raise KeyboardInterrupt
        return stop

    monkeypatch.setattr(utils.training.Trainer, "update", stop_after_two)
    with pytest.raises(SystemExit):
        main([*flags, "--model", "parts"])
    monkeypatch.setattr(utils.training.Trainer, "update", real_update)
    main([*TRAIN, *TINY, "--model", "parts", "--frames", str(4 * FRAMES_PER_UPDATE)])  # the schedule is kept
    assert [float(row["lr"]) for row in rows(storage, "parts")] == pytest.approx(whole)


# ------------------------------------------------------------------------------------------------ exploration
@pytest.mark.parametrize("kind", ["rnd", "count", "both"])
def test_the_exploration_bonus_is_logged_apart_saved_and_kept_on_resume(kind, storage):
    train("--explore", kind, "--explore-coef", "0.1", updates=3)
    logged = rows(storage)
    assert all(row["intrinsic_reward_mean"] != "" for row in logged)
    assert any(row["intrinsic_return_mean"] not in ("", "nan") for row in logged)
    # the env's return stays extrinsic: CartPole's return is its episode length
    ended = [row for row in logged if row["return_mean"] != "nan"]
    assert ended and all(float(row["return_mean"]) == float(row["num_frames_mean"]) for row in ended)
    saved = status(storage)["exploration_bonus"]
    assert saved and status(storage)["config"]["args"]["explore"] == kind
    train(updates=4)  # resumed without the flags: the bonus, its weight and its state are kept
    resumed_line = [line for line in log_text(storage).splitlines() if line.startswith("# resuming with")]
    assert len(resumed_line) == 1 and f"--explore {kind}" in resumed_line[0] and "--explore-coef 0.1" in resumed_line[0]
    resumed = status(storage)
    assert resumed["config"]["args"]["explore"] == kind and resumed["config"]["args"]["explore_coef"] == 0.1
    assert rows(storage)[-1]["intrinsic_reward_mean"] != ""


def test_without_explore_there_is_no_bonus_and_no_intrinsic_column_values(storage):
    train(updates=2)
    assert "exploration_bonus" not in status(storage)
    assert all(row["intrinsic_reward_mean"] == "" for row in rows(storage))


# ----------------------------------------------------------------------------------------------------- recipes
# Without its recipe's budget (192 frames, 4 updates) a run would train for 10M frames: this stops it after 5.
STOP_IF_NO_RECIPE = ["--stop-at-return", "1"]


@pytest.fixture
def cartpole_recipe(tmp_path, monkeypatch):
    """recipes/ppo.toml replaced by one with a CartPole-v1 recipe (3 envs, lr 0.002, 4 updates)."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "ppo.toml").write_text(
        '["CartPole-v1"]\nprocs = 3\nframes_per_proc = 16\nlr = 0.002\nframes = 192\nexplore = "count"\n'
    )
    monkeypatch.setattr(recipes, "RECIPES_DIR", str(folder))
    return folder / "ppo.toml"


def test_a_known_env_trains_with_its_recipe_and_the_header_shows_it(storage, cartpole_recipe):
    from scripts.train import main

    main([*TRAIN, "--batch-size", "16", "--epochs", "1", *STOP_IF_NO_RECIPE])
    args = status(storage)["config"]["args"]
    assert (args["procs"], args["frames_per_proc"], args["lr"], args["explore"]) == (3, 16, 0.002, "count")
    assert status(storage)["num_frames"] == 192
    header = [line for line in log_text(storage).splitlines() if line.startswith("# recipe")]
    assert header == [
        "# recipe for CartPole-v1 from recipes/ppo.toml: --procs 3 --frames-per-proc 16 --lr 0.002 --frames 192 "
        "--explore count; --no-recipe turns it off"
    ]


def test_a_flag_given_overrides_the_recipe_and_no_recipe_turns_it_off(storage, cartpole_recipe):
    from scripts.train import main

    main([*TRAIN, "--batch-size", "16", "--epochs", "1", "--lr", "0.003", "--model", "given", *STOP_IF_NO_RECIPE])
    args = status(storage, model="given")["config"]["args"]
    assert (args["procs"], args["lr"]) == (3, 0.003)
    assert "(--lr given on the command line instead)" in log_text(storage, "given")
    main([*TRAIN, *TINY, "--frames", "64", "--no-recipe", "--model", "off"])
    args = status(storage, model="off")["config"]["args"]
    assert (args["procs"], args["lr"], args["explore"], args["recipe"]) == (2, 0.001, "none", None)
    assert "# --no-recipe: the recipe for CartPole-v1" in log_text(storage, "off")


def test_resuming_keeps_the_settings_the_model_was_made_with(storage, cartpole_recipe):
    from scripts.train import main

    main([*TRAIN, "--batch-size", "16", "--epochs", "1", "--frames", "96"])
    cartpole_recipe.write_text('["CartPole-v1"]\nprocs = 5\nframes_per_proc = 32\nlr = 0.1\n')  # the file changes
    main([*TRAIN, "--batch-size", "16", "--epochs", "1", "--frames", "192"])
    args = status(storage)["config"]["args"]
    assert (args["procs"], args["frames_per_proc"], args["lr"], args["explore"]) == (3, 16, 0.002, "count")
    assert [int(row["frames"]) for row in rows(storage)] == [48, 96, 144, 192]
    assert "# resuming with the settings it was made with" in log_text(storage)
    # a flag given when resuming wins
    main([*TRAIN, "--batch-size", "16", "--epochs", "1", "--frames", "240", "--lr", "0.0005"])
    assert status(storage)["config"]["args"]["lr"] == 0.0005


def test_the_shipped_recipe_of_doorkey_is_used_and_shown(storage):
    from scripts.train import main

    main(["--algo", "ppo", "--env", "MiniGrid-DoorKey-5x5-v0", "--model", "m", "--frames", "2048", "--quiet"])
    args = status(storage)["config"]["args"]
    assert args["recipe"] == recipes.recipe_for("ppo", "MiniGrid-DoorKey-5x5-v0") and args["procs"] == 16
    assert "# recipe for MiniGrid-DoorKey-5x5-v0 from recipes/ppo.toml: --procs 16" in log_text(storage)
