"""scripts.export --format onnx: the graph gives what the torch model gives (onnxruntime against the model, to 1e-5)
for the conv, recurrent, text and continuous models, and scripts.evaluate --onnx plays it as the model plays."""

import importlib
import json
import sys

import numpy as np
import pytest
import torch

from tests.test_checkpoint import copy_old_model
from tests.test_scripts import TINY_PPO, assert_one_line_error, run_script
from utils import checkpoint as checkpoints
from utils.agent import Agent
from utils.env import make_env
from utils.export import ExportedPolicy, model_inputs, session

ATOL = 1e-5
DOORKEY = "MiniGrid-DoorKey-5x5-v0"
# name: (env id, flags of scripts.train); each a few updates of training, so that no weight is at its start value
MODELS = {
    "conv": (DOORKEY, ["--frames", 256]),
    "recurrent": ("MiniGrid-Empty-5x5-v0", ["--frames", 1024, "--recurrence", 2]),
    "text": ("MiniGrid-GoToDoor-5x5-v0", ["--frames", 256, "--text"]),
}


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """The four kinds of model in one storage folder: the three of MODELS, trained here, and the continuous one
    of tests/data (Pendulum-v1, A2C, with the observation normaliser, whose statistics the graph must apply)."""
    storage = tmp_path_factory.mktemp("storage")
    for name, (env_id, flags) in MODELS.items():
        run_script("train", "--env", env_id, "--model", name, *flags, *TINY_PPO, "--workers", 0, storage=storage)
    copy_old_model("pendulum_a2c", storage)
    return storage


@pytest.fixture
def in_storage(storage, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(storage))
    monkeypatch.chdir(tmp_path)
    return storage


def export(*argv):
    from scripts.export import main

    return main([*map(str, argv)])


def load_agent(storage, name):
    model_dir = storage / name
    env_id = checkpoints.load(model_dir).architecture()["env"]
    env = make_env(env_id)
    agent = Agent(env.observation_space, env.action_space, model_dir)
    return agent, env


def expected_outputs(agent, observations, memory):
    """The torch model's outputs, through the evaluation's own preprocessing (not the export's wrapper)."""
    with torch.no_grad():
        obs = agent.preprocess_obss(observations)
        if agent.model.recurrent:
            dist, value, memory = agent.model(obs, torch.as_tensor(memory))
        else:
            dist, value = agent.model(obs)
    if agent.model.continuous:
        out = {"mean": dist.mean, "log_std": dist.stddev.log()}
    else:
        out = {"logits": dist.logits}
    out["value"] = value
    if agent.model.recurrent:
        out["memory_out"] = memory
    return {name: tensor.numpy() for name, tensor in out.items()}


def rollout(env, steps, seed):
    """Observations of ``env`` along random actions: reset with ``seed``, then ``steps`` steps."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    observations = [obs]
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
        observations.append(obs)
    return observations


@pytest.mark.parametrize("name", ["conv", "recurrent", "text", "pendulum_a2c"])
def test_onnxruntime_gives_the_torch_models_outputs(name, in_storage, tmp_path):
    out = tmp_path / f"{name}.onnx"
    export("--model", name, "--format", "onnx", "--out", out)
    agent, env = load_agent(in_storage, name)
    sess = session(str(out))
    names = [o.name for o in sess.get_outputs()]
    exported = ExportedPolicy(agent.model, agent.preprocess_obss)
    assert [i.name for i in sess.get_inputs()] == exported.input_names and names == exported.output_names
    if name == "text":  # the vocabulary written beside it is the model's
        assert json.loads((tmp_path / "text.vocab.json").read_text()) == agent.preprocess_obss.vocab.vocab
    observations = rollout(env, 40, seed=3)
    memory = np.zeros((1, agent.model.memory_size), np.float32) if agent.model.recurrent else None
    # Batches of 1 (step by step, the memory carried from one to the next) and of several (the traced size was 2).
    for batch in [observations[i : i + 1] for i in range(20)] + [observations[20:25], observations[25:]]:
        if memory is not None and len(memory) != len(batch):
            memory = np.random.default_rng(0).normal(size=(len(batch), memory.shape[1])).astype(np.float32)
        expected = expected_outputs(agent, batch, memory)
        got = dict(zip(names, sess.run(names, model_inputs(exported, batch, memory)), strict=True))
        for key in names:
            np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=ATOL, err_msg=f"{name}: {key}")
        if memory is not None:
            memory = got["memory_out"]
    env.close()


def test_the_text_graph_reads_missions_of_several_lengths_in_one_batch(in_storage, tmp_path):
    out = tmp_path / "text.onnx"
    export("--model", "text", "--out", out)
    agent, env = load_agent(in_storage, "text")
    observations = rollout(env, 3, seed=0)
    missions = ["go to the red door", "go to the door", "go to the very far blue door now", "door"]
    observations = [dict(obs, mission=mission) for obs, mission in zip(observations, missions, strict=True)]
    exported = ExportedPolicy(agent.model, agent.preprocess_obss)
    inputs = model_inputs(exported, observations)
    assert inputs["mission"].shape == (4, 8) and inputs["mission"][3, 1:].sum() == 0  # padded with 0
    sess = session(str(out))
    got = sess.run(["logits", "value"], inputs)
    expected = expected_outputs(agent, observations, None)
    np.testing.assert_allclose(got[0], expected["logits"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(got[1], expected["value"], rtol=0, atol=ATOL)
    env.close()


def test_the_default_out_is_name_dot_onnx_here_and_the_graph_says_what_it_is(in_storage, tmp_path, capsys):
    import onnx

    assert export("--model", "conv") == "conv.onnx"
    out = capsys.readouterr().out
    assert "exported to conv.onnx: image -> logits, value" in out and "onnxruntime matches" in out
    graph = onnx.load(str(tmp_path / "conv.onnx"))
    metadata = {p.key: p.value for p in graph.metadata_props}
    assert metadata["torch_rl.env"] == DOORKEY and metadata["torch_rl.frames"] == "256"
    assert "uint8" in graph.doc_string
    assert not (tmp_path / "conv.vocab.json").exists()  # only a --text model has a vocabulary


def evaluate(storage, *argv):
    proc = run_script("evaluate", *argv, "--json", "-", "--workers", 0, storage=storage)
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("name", "env_id"), [("recurrent", "MiniGrid-Empty-5x5-v0"), ("conv", DOORKEY), ("pendulum_a2c", "Pendulum-v1")]
)
def test_evaluate_onnx_gives_the_models_returns_with_argmax(name, env_id, in_storage, tmp_path):
    # With --argmax only: sampled actions are drawn from the same distributions, but building the torch model
    # draws from the random generator first, so the two evaluations' draws differ.
    export("--model", name, "--out", tmp_path / "policy.onnx")
    common = ["--env", env_id, "--episodes", 6, "--procs", 3, "--seed", 5, "--argmax"]
    by_model = evaluate(in_storage, *common, "--model", name)
    by_graph = evaluate(in_storage, *common, "--onnx", tmp_path / "policy.onnx")
    assert by_graph["onnx"] == str(tmp_path / "policy.onnx") and by_graph["model"] is None
    assert by_graph["num_frames"] == by_model["num_frames"]
    if env_id == "Pendulum-v1":  # the actions are floats: the returns agree to rounding
        assert len(set(by_model["returns"])) == 6
        np.testing.assert_allclose(by_graph["returns"], by_model["returns"], rtol=1e-5)
    else:
        assert by_graph["returns"] == by_model["returns"]


class Recording:
    """A policy (utils.agent.Policy's interface) that keeps the actions it took."""

    def __init__(self, policy):
        self.policy, self.actions = policy, []

    def get_actions(self, obss):
        actions = self.policy.get_actions(obss)
        self.actions.append(actions.tolist())
        return actions

    def analyze_feedbacks(self, dones):
        self.policy.analyze_feedbacks(dones)


def test_the_recurrent_graph_acts_step_by_step_as_the_model_across_episode_ends(in_storage, tmp_path):
    # Sampled actions, the random generator seeded alike before each run: the graph's log-probabilities match the
    # model's to ~1e-7, so the draws are the same and so are the episodes, whose ends zero the memory.
    import torch_rl
    from utils.env import make_envs
    from utils.evaluation import run_episodes
    from utils.export import OnnxPolicy

    export("--model", "recurrent", "--out", tmp_path / "policy.onnx")
    played = []
    for which in ("model", "graph"):
        envs = torch_rl.ParallelEnv(make_envs("MiniGrid-Empty-5x5-v0", 3, seed=5), num_workers=0)
        space, actions = envs.single_observation_space, envs.single_action_space
        if which == "model":
            policy = Agent(space, actions, in_storage / "recurrent", num_envs=3)
        else:
            policy = OnnxPolicy(str(tmp_path / "policy.onnx"), space, actions, num_envs=3)
        recording = Recording(policy)
        torch.manual_seed(0)
        returns, lengths, _ = run_episodes(envs, recording, 12, actions)
        envs.close()
        played.append((recording.actions, returns, lengths))
    assert played[0] == played[1]
    assert len(set(played[0][2])) > 1  # some episodes reach the goal early: the policy is seen to act


def test_bad_input_is_one_line(in_storage, tmp_path, capsys):
    def fails(script, *argv):
        main = importlib.import_module(f"scripts.{script}").main
        with pytest.raises(SystemExit) as exit_info:
            main([*map(str, argv)])
        assert exit_info.value.code == 2
        return capsys.readouterr().err

    assert_one_line_error(fails("export", "--model", "conv", "--out", in_storage / "conv" / "x.onnx"), "model folder")
    assert_one_line_error(fails("export", "--model", "missing"), "no trained model")
    assert_one_line_error(fails("export", "--model", "conv", "--format", "tflite"), "invalid choice")
    assert_one_line_error(fails("evaluate", "--env", DOORKEY, "--onnx", tmp_path / "none.onnx"), "no such file")
    (tmp_path / "junk.onnx").write_text("not a graph")
    assert_one_line_error(fails("evaluate", "--env", DOORKEY, "--onnx", tmp_path / "junk.onnx"), "cannot load")
    export("--model", "conv", "--out", tmp_path / "conv.onnx")
    graph = tmp_path / "conv.onnx"
    assert_one_line_error(fails("evaluate", "--env", "Pendulum-v1", "--onnx", graph), "other observations")
    assert_one_line_error(fails("evaluate", "--env", DOORKEY, "--onnx", graph, "--best"), "drop --best")
    assert_one_line_error(fails("evaluate", "--env", DOORKEY, "--onnx", graph, "--model", "conv"), "not allowed")
    export("--model", "text", "--out", tmp_path / "text.onnx")
    (tmp_path / "text.vocab.json").unlink()
    env = "MiniGrid-GoToDoor-5x5-v0"
    assert_one_line_error(fails("evaluate", "--env", env, "--onnx", tmp_path / "text.onnx"), "vocabulary", "missing")


def test_without_the_export_extra_export_says_what_to_install(in_storage, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime then raises ImportError
    with pytest.raises(SystemExit) as exit_info:
        export("--model", "conv")
    assert exit_info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, 'pip install -e ".[export]"')
