"""The library says what is wrong in the caller's words (issue 32, sections 7 and 8).

Each row is one way of using A2CAlgo or PPOAlgo wrongly from Python: a constructor argument out of its range, or
a model, ``preprocess_obss`` or ``reshape_reward`` whose first output is not what the algorithm needs. Each must
raise TypeError or ValueError naming the argument, what was expected and what came, before anything deep in torch
fails. The last rows pin the two positional orders the constructors accept (torch-ac 1.4's and the original
torch-rl's); tests/test_torch_ac_compat.py trains DoorKey-5x5 with a client written in each.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Categorical

import torch_rl
from tests.envs import FixedLengthEnv
from tests.models import MLPModel, RecurrentMLPModel
from torch_rl.dictlist import DictList

ALGOS = {"a2c": torch_rl.A2CAlgo, "ppo": torch_rl.PPOAlgo}
NUM_ENVS = 3


def envs():
    return [FixedLengthEnv() for _ in range(NUM_ENVS)]


# -------------------------------------------------------------------------------------- constructor arguments
# (algos, keyword arguments, exception, what the message must say: the argument, the range and the value)
CONSTRUCTOR_CASES = {
    "num_frames_per_proc=0 (was silently 128, or 5)": (
        "a2c ppo", {"num_frames_per_proc": 0}, ValueError, r"num_frames_per_proc must be an int >= 1, got 0"
    ),
    "num_frames_per_proc=-4": (
        "a2c ppo", {"num_frames_per_proc": -4}, ValueError, r"num_frames_per_proc must be an int >= 1, got -4"
    ),
    "num_frames_per_proc=2.5": (
        "a2c ppo", {"num_frames_per_proc": 2.5}, TypeError, r"num_frames_per_proc must be an int >= 1, got float 2.5"
    ),
    "num_frames_per_proc='128'": (
        "a2c ppo", {"num_frames_per_proc": "128"}, TypeError, r"num_frames_per_proc must be an int >= 1, got str '128'"
    ),
    "epochs=0": ("ppo", {"epochs": 0}, ValueError, r"epochs must be an int >= 1, got 0"),
    "epochs=1.5": ("ppo", {"epochs": 1.5}, TypeError, r"epochs must be an int >= 1, got float 1.5"),
    "recurrence=0": ("a2c ppo", {"recurrence": 0}, ValueError, r"recurrence must be an int >= 1, got 0"),
    "recurrence=2.0": ("a2c ppo", {"recurrence": 2.0}, TypeError, r"recurrence must be an int >= 1, got float 2.0"),
    "batch_size=0": ("ppo", {"batch_size": 0}, ValueError, r"batch_size must be an int >= 1, got 0"),
    "clip_eps=-1": ("ppo", {"clip_eps": -1}, ValueError, r"clip_eps must be a number in \(0, 1\], got -1"),
    "clip_eps=0": ("ppo", {"clip_eps": 0.0}, ValueError, r"clip_eps must be a number in \(0, 1\], got 0.0"),
    "clip_eps=1e308": ("ppo", {"clip_eps": 1e308}, ValueError, r"clip_eps must be a number in \(0, 1\], got 1e\+308"),
    "discount=2.0": ("a2c ppo", {"discount": 2.0}, ValueError, r"discount must be a number in \[0, 1\], got 2.0"),
    "discount=nan": ("a2c ppo", {"discount": math.nan}, ValueError, r"discount must be a number in \[0, 1\], got nan"),
    "discount='0.99'": (
        "a2c ppo", {"discount": "0.99"}, TypeError, r"discount must be a number in \[0, 1\], got str '0.99'"
    ),
    "gae_lambda=-0.1": ("a2c ppo", {"gae_lambda": -0.1}, ValueError, r"gae_lambda must be a number in \[0, 1\]"),
    "lr=0": ("a2c ppo", {"lr": 0}, ValueError, r"lr must be a finite number > 0, got 0"),
    "lr=inf": ("a2c ppo", {"lr": math.inf}, ValueError, r"lr must be a finite number > 0, got inf"),
    "lr=None": ("a2c ppo", {"lr": None}, TypeError, r"lr must be a finite number > 0, got None"),
    "entropy_coef=-0.01": (
        "a2c ppo", {"entropy_coef": -0.01}, ValueError, r"entropy_coef must be a finite number >= 0, got -0.01"
    ),
    "value_loss_coef=nan": (
        "a2c ppo", {"value_loss_coef": math.nan}, ValueError, r"value_loss_coef must be a finite number >= 0"
    ),
    "max_grad_norm=0": ("a2c ppo", {"max_grad_norm": 0}, ValueError, r"max_grad_norm must be a finite number > 0"),
    "adam_eps=0": ("ppo", {"adam_eps": 0}, ValueError, r"adam_eps must be a finite number > 0, got 0"),
    "rmsprop_eps=-1e-8": ("a2c", {"rmsprop_eps": -1e-8}, ValueError, r"rmsprop_eps must be a finite number > 0"),
    "rmsprop_alpha=1": ("a2c", {"rmsprop_alpha": 1}, ValueError, r"rmsprop_alpha must be a number in \[0, 1\), got 1"),
    "exploration_coef=-1": (
        "a2c ppo", {"exploration_coef": -1}, ValueError, r"exploration_coef must be a finite number >= 0, got -1"
    ),
    "seed=-1": ("a2c ppo", {"seed": -1}, ValueError, r"seed must be None or an int >= 0, got -1"),
    "seed=1.5": ("a2c ppo", {"seed": 1.5}, TypeError, r"seed must be None or an int >= 0, got float 1.5"),
    "num_workers=2.0": ("a2c ppo", {"num_workers": 2.0}, TypeError, r"num_workers must be None or an int >= 0"),
    "total_frames=0": (
        "a2c ppo", {"lr_schedule": "linear", "total_frames": 0}, ValueError, r"total_frames must be None or an int >= 1"
    ),
    "preprocess_obss not callable": (
        "a2c ppo", {"preprocess_obss": "image"}, TypeError, r"preprocess_obss must be None or a function, got str"
    ),
    "reshape_reward not callable": (
        "a2c ppo", {"reshape_reward": 2.0}, TypeError, r"reshape_reward must be None or a function, got float 2.0"
    ),
    "recurrence does not divide batch_size": (
        "ppo", {"recurrence": 4, "batch_size": 18, "model": "recurrent"}, ValueError, r"recurrence \(4\) must divide"
    ),
    "recurrence=0 with a recurrent model": (
        "a2c ppo", {"recurrence": 0, "model": "recurrent"}, ValueError, r"recurrence must be an int >= 1, got 0"
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    "algo_name,kwargs,error,message",
    [
        pytest.param(name, kwargs, error, message, id=f"{name}: {case}")
        for case, (names, kwargs, error, message) in CONSTRUCTOR_CASES.items()
        for name in names.split()
    ],
)
def test_a_constructor_argument_out_of_range_is_refused_where_it_is_set(algo_name, kwargs, error, message):
    kwargs = dict(kwargs)
    model = RecurrentMLPModel(1, 2) if kwargs.pop("model", None) == "recurrent" else MLPModel(1, 2)
    kwargs.setdefault("num_frames_per_proc", 8)
    with pytest.raises(error, match=message):
        ALGOS[algo_name](envs(), model, num_workers=kwargs.pop("num_workers", 0), **kwargs)


@pytest.mark.parametrize("algo_name", ALGOS)
def test_in_range_edges_are_accepted_and_none_means_the_default(algo_name):
    kwargs = dict(discount=0.0, gae_lambda=1.0, entropy_coef=0, value_loss_coef=0.0, seed=0, num_workers=0)
    kwargs |= {"clip_eps": 1.0, "epochs": 1, "batch_size": 1} if algo_name == "ppo" else {"rmsprop_alpha": 0.0}
    with ALGOS[algo_name](envs(), MLPModel(1, 2), num_frames_per_proc=np.int64(1), **kwargs) as algo:
        algo.update_parameters()
    with ALGOS[algo_name](envs(), MLPModel(1, 2), num_frames_per_proc=None, num_workers=0) as algo:
        assert algo.num_frames_per_proc == {"a2c": 5, "ppo": 128}[algo_name]


def test_a_model_that_is_not_a_module_is_refused_where_it_is_set():
    def acmodel(obs):
        return Categorical(logits=torch.zeros(len(obs), 2)), torch.zeros(len(obs))

    for algo in ALGOS.values():
        with pytest.raises(TypeError, match=r"acmodel must be a torch.nn.Module .*, got function"):
            algo(envs(), acmodel, num_workers=0)


# ---------------------------------------------------------------------------- what the caller's functions return
class Outputs(nn.Module, torch_rl.ACModel):
    """A correct feedforward model whose outputs ``change(dist, value)`` turns into a wrong one."""

    def __init__(self, change):
        super().__init__()
        self.layer = nn.Linear(1, 3)  # two logits and the value
        self.change = change

    def forward(self, obs):
        out = self.layer(obs)
        return self.change(Categorical(logits=out[:, :2]), out[:, 2])


class RecurrentOutputs(RecurrentMLPModel):
    """A correct recurrent model whose outputs ``change(dist, value, memory)`` turns into a wrong one."""

    def __init__(self, change):
        super().__init__(1, 2)
        self.change = change

    def forward(self, obs, memory):
        return self.change(*super().forward(obs, memory))


def rows(obss, device=None):
    return torch.tensor(np.array(obss), device=device)


# (what is wrong, algorithm keyword arguments, exception, what the message must say)
OUTPUT_CASES = {
    "value of shape (N, 1)": (
        {"acmodel": Outputs(lambda d, v: (d, v.unsqueeze(1)))},
        ValueError, r"acmodel's value must be a tensor of shape \(3,\) \(one per env\), got shape \(3, 1\)",
    ),
    "value of shape (N, 3)": (
        {"acmodel": Outputs(lambda d, v: (d, v.unsqueeze(1).repeat(1, 3)))},
        ValueError, r"acmodel's value must be a tensor of shape \(3,\) \(one per env\), got shape \(3, 3\)",
    ),
    "value of N-1 rows": (
        {"acmodel": Outputs(lambda d, v: (d, v[:-1]))},
        ValueError, r"acmodel's value must be a tensor of shape \(3,\) \(one per env\), got shape \(2,\)",
    ),
    "scalar value": (
        {"acmodel": Outputs(lambda d, v: (d, v.mean()))},
        ValueError, r"acmodel's value must be a tensor of shape \(3,\) \(one per env\), got shape \(\)",
    ),
    "value a float, not a tensor": (
        {"acmodel": Outputs(lambda d, v: (d, 0.5))},
        TypeError, r"acmodel's value must be a tensor of shape \(3,\) \(one per env\), got float 0.5",
    ),
    "integer value tensor": (
        {"acmodel": Outputs(lambda d, v: (d, v.long()))},
        TypeError, r"acmodel's value must be a floating-point tensor, got dtype torch.int64",
    ),
    "a tensor instead of a distribution": (
        {"acmodel": Outputs(lambda d, v: (d.logits, v))},
        TypeError, r"acmodel's dist must be a torch.distributions.Distribution, got Tensor of shape \(3, 2\)",
    ),
    "a distribution over 1 env, not 3": (
        {"acmodel": Outputs(lambda d, v: (Categorical(logits=d.logits[:1]), v))},
        ValueError, r"acmodel's dist must give one action per env \(3\), its sample has shape \(1,\)",
    ),
    "a plain nn.Linear as the model": (
        {"acmodel": nn.Linear(1, 2)},
        TypeError, r"acmodel\(obs\) must return \(dist, value\) \(see torch_rl.ACModel\), got Tensor of shape \(3, 2\)",
    ),
    "a feedforward model returning three things": (
        {"acmodel": Outputs(lambda d, v: (d, v, v))},
        TypeError, r"acmodel\(obs\) must return \(dist, value\) \(see torch_rl.ACModel\), got a tuple of 3",
    ),
    "a recurrent model returning no memory": (
        {"acmodel": RecurrentOutputs(lambda d, v, m: (d, v))},
        TypeError, r"acmodel\(obs, memory\) must return \(dist, value, memory\) .*, got a tuple of 2",
    ),
    "a recurrent model's memory of another size": (
        {"acmodel": RecurrentOutputs(lambda d, v, m: (d, v, m[:, :5]))},
        ValueError, r"acmodel's memory must be a tensor of shape \(3, 64\) \(memory_size 64\), got shape \(3, 5\)",
    ),
    "preprocess_obss returning too few rows": (
        {"preprocess_obss": lambda obss, device=None: rows(obss[:-1], device)},
        ValueError, r"preprocess_obss must return one row per observation \(3\), got a Tensor of 2 rows",
    ),
    "preprocess_obss returning a DictList of too few rows": (
        {"preprocess_obss": lambda obss, device=None: DictList(x=rows(obss[:-1], device))},
        ValueError, r"preprocess_obss must return one row per observation \(3\), got a DictList of 2 rows",
    ),
    "preprocess_obss returning a 0-d tensor": (
        {"preprocess_obss": lambda obss, device=None: torch.tensor(0.0)},
        ValueError, r"preprocess_obss must return one row per observation \(3\), got a Tensor of shape \(\)",
    ),
    "preprocess_obss returning a generator": (
        {"preprocess_obss": lambda obss, device=None: (torch.tensor(obs) for obs in obss)},
        TypeError, r"preprocess_obss must return a tensor or a DictList of tensors, got generator",
    ),
    "preprocess_obss returning None": (
        {"preprocess_obss": lambda obss, device=None: None},
        TypeError, r"preprocess_obss must return a tensor or a DictList of tensors, got None",
    ),
    "preprocess_obss returning a numpy array": (
        {"preprocess_obss": lambda obss, device=None: np.array(obss)},
        TypeError, r"preprocess_obss must return a tensor or a DictList of tensors, got ndarray",
    ),
    "reshape_reward returning a string": (
        {"reshape_reward": lambda obs, action, reward, done: "1.0"},
        TypeError, r"reshape_reward\(obs, action, reward, done\) must return a number, got str '1.0'",
    ),
    "reshape_reward returning None": (
        {"reshape_reward": lambda obs, action, reward, done: None},
        TypeError, r"reshape_reward\(obs, action, reward, done\) must return a number, got None",
    ),
    "reshape_reward returning a pair": (
        {"reshape_reward": lambda obs, action, reward, done: (reward, reward)},
        TypeError, r"reshape_reward\(obs, action, reward, done\) must return a number, got tuple \(1.0, 1.0\)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("algo_name", ALGOS)
@pytest.mark.parametrize("kwargs,error,message", [pytest.param(*case, id=name) for name, case in OUTPUT_CASES.items()])
def test_a_wrong_first_output_is_named_in_the_callers_words(algo_name, kwargs, error, message):
    kwargs = dict(kwargs)
    model = kwargs.pop("acmodel", None) or MLPModel(1, 2)
    if algo_name == "ppo":
        kwargs["batch_size"] = 4
    with ALGOS[algo_name](envs(), model, num_frames_per_proc=4, recurrence=2, num_workers=0, **kwargs) as algo:
        with pytest.raises(error, match=message):
            algo.update_parameters()


def test_a_reshape_reward_that_goes_wrong_after_the_first_step_is_still_named():
    calls = []

    def reshape_reward(obs, action, reward, done):
        calls.append(1)
        return reward if len(calls) <= NUM_ENVS else "oops"

    with torch_rl.A2CAlgo(envs(), MLPModel(1, 2), reshape_reward=reshape_reward, num_workers=0) as algo:
        with pytest.raises(TypeError, match=r"reshape_reward\(obs, action, reward, done\) must return a number"):
            algo.update_parameters()
    assert len(calls) > NUM_ENVS


# --------------------------------------------------------------------------------------- the two positional orders
def preprocess(obss, device=None):
    return rows(obss, device)


def reshape(obs, action, reward, done):
    return reward


def settings(algo):
    """The constructor's numbers as the algorithm uses them."""
    group = algo.optimizer.param_groups[0]
    out = {
        "num_frames_per_proc": algo.num_frames_per_proc,
        "discount": algo.discount,
        "lr": group["lr"],
        "gae_lambda": algo.gae_lambda,
        "entropy_coef": algo.entropy_coef,
        "value_loss_coef": algo.value_loss_coef,
        "max_grad_norm": algo.max_grad_norm,
        "recurrence": algo.recurrence,
        "eps": group["eps"],
        "device": algo.device,
        "preprocess_obss": algo.preprocess_obss,
        "reshape_reward": algo.reshape_reward,
    }
    if isinstance(algo, torch_rl.PPOAlgo):
        out |= {"clip_eps": algo.clip_eps, "epochs": algo.epochs, "batch_size": algo.batch_size}
    else:
        out["alpha"] = group["alpha"]
    return out


CPU = torch.device("cpu")
PPO_SETTINGS = {
    "num_frames_per_proc": 8, "discount": 0.9, "lr": 0.002, "gae_lambda": 0.8, "entropy_coef": 0.02,
    "value_loss_coef": 0.4, "max_grad_norm": 0.6, "recurrence": 2, "eps": 1e-5, "clip_eps": 0.3, "epochs": 2,
    "batch_size": 16, "device": CPU, "preprocess_obss": preprocess, "reshape_reward": None,
}  # fmt: skip
A2C_SETTINGS = {
    "num_frames_per_proc": 8, "discount": 0.9, "lr": 0.002, "gae_lambda": 0.8, "entropy_coef": 0.02,
    "value_loss_coef": 0.4, "max_grad_norm": 0.6, "recurrence": 2, "alpha": 0.95, "eps": 1e-5, "device": CPU,
    "preprocess_obss": preprocess, "reshape_reward": None,
}  # fmt: skip
PPO_NUMBERS = (0.9, 0.002, 0.8, 0.02, 0.4, 0.6, 2, 1e-5, 0.3, 2, 16)  # discount ... batch_size
A2C_NUMBERS = (0.9, 0.002, 0.8, 0.02, 0.4, 0.6, 2, 0.95, 1e-5)  # discount ... rmsprop_eps

# (algo, positional arguments after envs and acmodel, keyword arguments, the settings they must give)
ORDER_CASES = {
    "torch-rl PPO": ("ppo", (8, *PPO_NUMBERS, preprocess), {}, PPO_SETTINGS),
    "torch-rl PPO with reshape_reward": (
        "ppo", (8, *PPO_NUMBERS, preprocess, reshape), {}, PPO_SETTINGS | {"reshape_reward": reshape}
    ),
    "torch-rl PPO, frames_per_proc None (its default)": (
        "ppo", (None, *PPO_NUMBERS, preprocess), {}, PPO_SETTINGS | {"num_frames_per_proc": 128}
    ),
    "torch-rl PPO, numpy int frames": ("ppo", (np.int64(8), *PPO_NUMBERS, preprocess), {}, PPO_SETTINGS),
    "torch-rl PPO and device by keyword": ("ppo", (8, *PPO_NUMBERS, preprocess), {"device": "cpu"}, PPO_SETTINGS),
    "torch-rl A2C": ("a2c", (8, *A2C_NUMBERS, preprocess), {}, A2C_SETTINGS),
    "torch-rl A2C, frames_per_proc None (its default)": (
        "a2c", (None, *A2C_NUMBERS[:6], 1, *A2C_NUMBERS[7:], preprocess), {},
        A2C_SETTINGS | {"num_frames_per_proc": 5, "recurrence": 1},  # 1: recurrence must divide the 5 frames
    ),
    "torch-ac PPO, device 'cpu'": ("ppo", ("cpu", 8, *PPO_NUMBERS, preprocess), {}, PPO_SETTINGS),
    "torch-ac PPO, torch.device": ("ppo", (CPU, 8, *PPO_NUMBERS, preprocess, reshape), {},
                                   PPO_SETTINGS | {"reshape_reward": reshape}),
    "torch-ac PPO, device None": ("ppo", (None, 8, *PPO_NUMBERS, preprocess), {}, PPO_SETTINGS),
    "torch-ac PPO, device None and frames None": (
        "ppo", (None, None, *PPO_NUMBERS, preprocess), {}, PPO_SETTINGS | {"num_frames_per_proc": 128}
    ),
    "torch-ac A2C, device 'cpu'": ("a2c", ("cpu", 8, *A2C_NUMBERS, preprocess), {}, A2C_SETTINGS),
    "torch-ac A2C, device None": ("a2c", (None, 8, *A2C_NUMBERS, preprocess), {}, A2C_SETTINGS),
    "keywords only": (
        "ppo", (), dict(zip(["discount", "lr", "gae_lambda", "entropy_coef", "value_loss_coef", "max_grad_norm",
                             "recurrence", "adam_eps", "clip_eps", "epochs", "batch_size"], PPO_NUMBERS, strict=True))
        | {"num_frames_per_proc": 8, "preprocess_obss": preprocess}, PPO_SETTINGS,
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    "algo_name,args,kwargs,expected", [pytest.param(*case, id=name) for name, case in ORDER_CASES.items()]
)
def test_both_positional_orders_give_the_same_algorithm(algo_name, args, kwargs, expected):
    model = RecurrentMLPModel(1, 2)  # recurrence is used, so a shifted argument would show
    with ALGOS[algo_name](envs(), model, *args, num_workers=0, **kwargs) as algo:
        assert settings(algo) == expected
        algo.update_parameters()


# (algo, positional arguments after envs and acmodel, keyword arguments, exception, what the message must say)
ORDER_ERRORS = {
    "third a float": ("ppo", (2.5, 0.99), {}, TypeError, r"PPOAlgo's third positional argument .*got float 2.5"),
    "third a list": ("a2c", ([0], 5), {}, TypeError, r"A2CAlgo's third positional argument .*got list \[0\]"),
    "third a bool": ("ppo", (True, 128), {}, TypeError, r"PPOAlgo's third positional argument .*got bool True"),
    "third an int device index": (
        "ppo", (0, 128, 0.99), {}, ValueError,
        r"the third positional argument, 0, is num_frames_per_proc in torch-rl's order .* device='cuda:0'",
    ),
    "torch-rl order and the same argument by keyword": (
        "ppo", (8, 0.99), {"discount": 0.9}, TypeError, r"PPOAlgo got multiple values for argument 'discount'"
    ),
    "torch-rl order, too many": (
        "a2c", (8, *A2C_NUMBERS, preprocess, reshape, 0, 0, False, "extra"), {}, TypeError,
        r"A2CAlgo takes at most 17 positional arguments in torch-rl's order .*, got 18",
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    "algo_name,args,kwargs,error,message", [pytest.param(*case, id=name) for name, case in ORDER_ERRORS.items()]
)
def test_a_third_positional_argument_of_neither_order_is_a_type_error_naming_both(
    algo_name, args, kwargs, error, message
):
    with pytest.raises(error, match=message) as raised:
        ALGOS[algo_name](envs(), MLPModel(1, 2), *args, num_workers=0, **kwargs)
    if "third positional argument" in message:
        assert "torch-ac 1.4's order" in str(raised.value) and "torch-rl's order" in str(raised.value)
