"""compile=True against the eager path.

- The batched env (its view compiled): the same bytes as the eager env, and as Minigrid, step by step.
- The algorithms (acting, mini-batch loss and gradient step compiled): both runs start from the same parameters
  and seeds. Sampling draws from the same generator, so the rollouts must take the same actions; the parameters
  after each update must agree up to float rounding (the compiled graphs reorder sums).
"""

import pytest
import torch

import torch_rl
from model import ACModel
from tests.test_batched_babyai import run_fidelity as run_babyai_fidelity
from tests.test_batched_minigrid import run_fidelity as run_minigrid_fidelity
from torch_rl.algos.graph_step import GraphStep
from torch_rl.envs.minigrid import BatchedMiniGridEnv
from torch_rl.envs.minigrid.engine import COMPILED_VIEW_MAX_CPU_BATCH
from utils.format import get_obss_preprocessor

ENV_ID = "MiniGrid-DoorKey-5x5-v0"
TOLERANCE = 1e-5  # the parameters' largest difference after 3 updates (measured: ~3e-7)


def make_algo(algo_class, compile, use_memory=False, device="cpu", unused_parameter=False, **kwargs):
    torch.manual_seed(0)
    env = BatchedMiniGridEnv(ENV_ID, 4, seed=0, device=device, compile=compile)
    obs_space, preprocess = get_obss_preprocessor(env.single_observation_space)
    model = ACModel(obs_space, env.single_action_space, use_memory=use_memory)
    if unused_parameter:
        model.unused = torch.nn.Parameter(torch.zeros(3))
    return algo_class(env, model, device, preprocess_obss=preprocess, num_frames_per_proc=8, compile=compile, **kwargs)


def run_updates(algo, updates=3):
    """(actions, parameters) after each update."""
    out = []
    for _ in range(updates):
        exps, _ = algo.collect_experiences()
        algo.update_parameters(exps)
        out.append((exps.action.clone(), [p.detach().clone() for p in algo.acmodel.parameters()]))
    return out


def assert_trained_alike(eager, compiled):
    """Two run_updates results: the same actions at every update, parameters within TOLERANCE."""
    for (actions, params), (compiled_actions, compiled_params) in zip(eager, compiled, strict=True):
        assert torch.equal(actions, compiled_actions)
        assert max((p - q).abs().max().item() for p, q in zip(params, compiled_params, strict=True)) < TOLERANCE


ONE_GRAPH = {"act", "gradient_step"}  # on a CPU: acting, and from the optimizer's second step the whole step
PARTS = {"act", "batch_loss", "clip_gradients", "optimizer_step"}  # the loss, clipping and step compiled apart


@pytest.mark.parametrize(
    "algo_class, use_memory, kwargs, graphs",
    [
        (torch_rl.PPOAlgo, False, dict(batch_size=8, epochs=2, max_grad_norm=0.01), ONE_GRAPH),  # always clipped
        (torch_rl.PPOAlgo, True, dict(batch_size=8, epochs=2, recurrence=2), ONE_GRAPH),
        (torch_rl.A2CAlgo, False, {}, ONE_GRAPH),
        # a changing learning rate would compile the one graph again at each update: the parts, the step eager
        (
            torch_rl.PPOAlgo,
            False,
            dict(batch_size=8, epochs=2, lr_schedule="linear", total_frames=10**4),
            PARTS - {"optimizer_step"},
        ),
        # a parameter without a gradient has no optimizer state, which the one graph would give it: the parts
        (torch_rl.PPOAlgo, False, dict(batch_size=8, epochs=2, unused_parameter=True), PARTS),
    ],
    ids=["ppo-clipped", "ppo-memory", "a2c", "ppo-linear-lr", "ppo-unused-parameter"],
)
def test_compiled_training_matches_eager(algo_class, use_memory, kwargs, graphs):
    eager = run_updates(make_algo(algo_class, False, use_memory, **kwargs))
    compiled_algo = make_algo(algo_class, True, use_memory, **kwargs)
    compiled = run_updates(compiled_algo)
    assert_trained_alike(eager, compiled)
    # the parameters did move: the comparison is not between two untouched models
    first = [p.detach() for p in make_algo(algo_class, False, use_memory, **kwargs).acmodel.parameters()]
    assert max((p - q).abs().max().item() for p, q in zip(first, eager[-1][1], strict=True)) > 100 * TOLERANCE
    assert compiled_algo.compile_seconds > 0
    assert set(compiled_algo._compiled) == graphs


@pytest.mark.parametrize("algo_class", [torch_rl.PPOAlgo, torch_rl.A2CAlgo], ids=["ppo", "a2c"])
def test_a_gradient_that_is_not_finite_in_the_one_graph_changes_nothing(algo_class):
    """The one graph takes its optimizer step before the caller can see the gradient's norm: it must put the
    parameters and the optimizer's state back, as the eager path never changes them."""
    algo = make_algo(algo_class, True, **(dict(batch_size=8, epochs=2) if algo_class is torch_rl.PPOAlgo else {}))
    run_updates(algo, updates=2)
    assert "gradient_step" in algo._compiled
    exps, _ = algo.collect_experiences()
    advantage = exps.advantage.clone()
    exps.advantage[:] = float("nan")  # every mini-batch's: the first one raises
    params = [p.detach().clone() for p in algo.acmodel.parameters()]
    state = [[v.clone() for v in algo.optimizer.state[p].values()] for p in algo.acmodel.parameters()]
    with pytest.raises(FloatingPointError, match="parameters were not updated"):
        algo.update_parameters(exps)
    assert all(torch.equal(p, q) for p, q in zip(params, algo.acmodel.parameters(), strict=True))
    after = [list(algo.optimizer.state[p].values()) for p in algo.acmodel.parameters()]
    assert all(torch.equal(v, w) for old, new in zip(state, after, strict=True) for v, w in zip(old, new, strict=True))
    exps.advantage[:] = advantage  # the same rollout, finite: it does update
    algo.update_parameters(exps)
    assert not all(torch.equal(p, q) for p, q in zip(params, algo.acmodel.parameters(), strict=True))


@pytest.mark.parametrize("change", ["set_lr", "new optimizer", "max_grad_norm"])
def test_the_one_graph_follows_what_the_caller_changes(change):
    """A learning rate set by set_lr, an optimizer put in its place, a new clipping norm: the compiled run must
    follow them as the eager run does."""
    runs = []
    for compile in (False, True):
        algo = make_algo(torch_rl.PPOAlgo, compile, batch_size=8, epochs=2)
        run_updates(algo, updates=2)
        if change == "set_lr":
            algo.set_lr(0.003)
        elif change == "new optimizer":
            algo.optimizer = torch.optim.Adam(algo.acmodel.parameters(), lr=0.003, eps=1e-5)
        else:
            algo.max_grad_norm = 0.01
        runs.append(run_updates(algo, updates=2))
    (eager, compiled) = runs
    assert_trained_alike(eager, compiled)


def test_the_one_graph_step_is_right_when_torch_compile_runs_it_eagerly():
    """torch.compile runs a function eagerly once its recompile limit is reached, as after several algorithms in one
    process (each new model fails the graph's guards): the step must then give the eager path's parameters too."""
    eager = run_updates(make_algo(torch_rl.PPOAlgo, False, batch_size=8, epochs=2))
    algo = make_algo(torch_rl.PPOAlgo, True, batch_size=8, epochs=2)
    with torch.compiler.set_stance("force_eager"):
        compiled = run_updates(algo)
    assert set(algo._compiled) == ONE_GRAPH
    assert_trained_alike(eager, compiled)


def test_a_step_that_cannot_be_one_graph_is_compiled_in_parts(monkeypatch):
    def step(self, exps, starts, states):
        raise NotImplementedError("not traceable here")  # as torch.compile's errors, a RuntimeError

    monkeypatch.setattr(GraphStep, "step", step)
    algo = make_algo(torch_rl.PPOAlgo, True, batch_size=8, epochs=2)
    before = [p.detach().clone() for p in algo.acmodel.parameters()]
    with pytest.warns(UserWarning, match="could not be compiled as one graph .not traceable here.; its parts"):
        run_updates(algo, updates=2)
    assert set(algo._compiled) == PARTS
    assert not all(torch.equal(p, q) for p, q in zip(before, algo.acmodel.parameters(), strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("use_memory", [False, True], ids=["ppo", "ppo-memory"])
def test_compiled_training_on_cuda_matches_eager(use_memory):
    """On CUDA the graphs are replayed as CUDA graphs (mode reduce-overhead)."""
    kwargs = dict(batch_size=8, epochs=2, recurrence=2, device="cuda")
    eager = run_updates(make_algo(torch_rl.PPOAlgo, False, use_memory, **kwargs))
    compiled = run_updates(make_algo(torch_rl.PPOAlgo, True, use_memory, **kwargs))
    assert_trained_alike(eager, compiled)


def test_eager_algorithm_compiles_nothing():
    algo = make_algo(torch_rl.PPOAlgo, False, batch_size=8, epochs=1)
    algo.update_parameters()
    assert algo.compile_seconds == 0 and algo._compiled == {}


def test_compile_must_be_a_bool():
    with pytest.raises(TypeError, match="compile must be a bool"):
        make_algo(torch_rl.PPOAlgo, "yes")


def test_a_policy_that_is_not_finite_is_named_under_compile():
    algo = make_algo(torch_rl.PPOAlgo, True, batch_size=8, epochs=1)
    algo.update_parameters()
    with torch.no_grad():
        for p in algo.acmodel.actor.parameters():
            p.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="policy is not finite"):
        algo.collect_experiences()


# ------------------------------------------------------------------------------------------- the batched env
@pytest.mark.parametrize("env_id", ["MiniGrid-DoorKey-5x5-v0", "MiniGrid-FourRooms-v0", "BabyAI-GoToLocal-v0"])
def test_compiled_env_gives_the_eager_envs_bytes(env_id):
    # a full bank from the start: a growing bank's draws depend on how far its worker got (docs/batched-envs.md)
    bank = {"capacity": 64, "initial": 64}
    # the tensor ops' view, which Inductor compiles (on the CPU the fused C view replaces both: test_fused.py)
    eager, compiled = (
        BatchedMiniGridEnv(env_id, 16, seed=5, compile=c, bank_options=bank, fused=False) for c in (False, True)
    )
    assert compiled.compiled and not eager.compiled
    generator = torch.Generator().manual_seed(0)
    assert_same_obs(eager.get_obs(), compiled.get_obs())
    assert compiled.compile_seconds > 0 and eager.compile_seconds == 0  # timed at the first observation
    ended = assert_same_steps(eager, compiled, 300, generator)
    assert ended > 0  # resets happened, and their first observations were compared too


def test_large_cpu_batches_keep_the_eager_view():
    env = BatchedMiniGridEnv(ENV_ID, COMPILED_VIEW_MAX_CPU_BATCH + 1, compile=True, fused=False)
    assert not env.compiled  # Inductor's view is slower than eager there (docs/speed.md)


def test_the_fused_view_is_not_compiled():
    env = BatchedMiniGridEnv(ENV_ID, 16, compile=True)
    assert env._fused is not None and not env.compiled  # the C loop is faster than Inductor's view


def test_babyai_verdict_compiled_at_a_large_batch_gives_the_eager_envs_bytes():
    """Above the view's limit only BabyAI's verdict is compiled: same outputs, its compile time counted (the tensor
    ops' verdict, which CUDA runs: on the CPU the C loop replaces it)."""
    B, bank = COMPILED_VIEW_MAX_CPU_BATCH + 1, {"capacity": 64, "initial": 64}
    env_id = "BabyAI-MiniBossLevel-v0"  # sequences, ands, every action kind
    eager, compiled = (
        BatchedMiniGridEnv(env_id, B, seed=2, compile=c, bank_options=bank, fused=False) for c in (False, True)
    )
    assert not compiled.compiled and compiled.compile_seconds == 0
    assert_same_steps(eager, compiled, 200, torch.Generator().manual_seed(0))
    assert compiled.compile_seconds > 0 and eager.compile_seconds == 0


def assert_same_steps(eager, compiled, steps, generator) -> int:
    """Steps both envs with the same random actions, asserting the same outputs; returns the episodes ended."""
    ended = 0
    for _ in range(steps):
        actions = torch.randint(0, 7, (eager.num_envs,), generator=generator)
        (obs, reward, terminated, truncated, info), step = eager.step(actions), compiled.step(actions)
        assert_same_obs(obs, step[0])
        assert torch.equal(reward, step[1]) and torch.equal(terminated, step[2]) and torch.equal(truncated, step[3])
        assert info.keys() == step[4].keys()
        if info:
            assert_same_obs(info["final_obs"], step[4]["final_obs"])
            ended += int(info["_final_obs"].sum())
    return ended


def assert_same_obs(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key], key


def test_compiled_env_against_minigrid():
    stats = run_minigrid_fidelity(
        "MiniGrid-DoorKey-8x8-v0", num_envs=8, num_steps=300, seed=1, compile=True, fused=False
    )
    assert stats["steps"] == 2400 and stats["pickups"] > 0 and stats["toggles"] > 0, stats


@pytest.mark.parametrize(
    ("env_id", "reached"),
    [
        ("BabyAI-PutNextLocal-v0", ("pickups",)),
        ("BabyAI-OpenDoorsOrderN4Debug-v0", ("successes", "failures")),  # strict sequences
        ("BabyAI-MiniBossLevel-v0", ("successes",)),
    ],
)
def test_compiled_babyai_env_against_minigrid(env_id, reached):
    stats = run_babyai_fidelity(env_id, num_envs=4, num_steps=80, seed=3, compile=True, fused=False)
    assert stats["steps"] == 320 and all(stats[key] > 0 for key in reached), stats


# ------------------------------------------------------------------------------------------- the starter files
def test_train_compile_logs_the_compile_time_and_trains_the_same_model(tmp_path, monkeypatch):
    from scripts.train import main

    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    threads = torch.get_num_threads()
    flags = ["--algo", "ppo", "--env", ENV_ID, "--batched", "--procs", "4", "--frames-per-proc", "16"]
    flags += ["--batch-size", "32", "--epochs", "1", "--frames", "128", "--quiet", "--no-recipe"]
    try:
        main([*flags, "--model", "eager"])
        main([*flags, "--model", "compiled", "--compile"])
    finally:
        torch.set_num_threads(threads)
    log = (tmp_path / "compiled" / "log.txt").read_text()
    assert "# compiled in " in log and "# compiled in " not in (tmp_path / "eager" / "log.txt").read_text()
    eager, compiled = (
        torch.load(tmp_path / m / "status.pt", weights_only=True)["model_state"] for m in ("eager", "compiled")
    )
    assert max((eager[k] - compiled[k]).abs().max().item() for k in eager) < TOLERANCE
