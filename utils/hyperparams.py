"""The hyper-parameters of scripts.train, each declared once: its flag, type, default, range, help, the algorithms
that use it, the constructor argument it becomes, whether a recipe may set it (and a resumed model keeps it), and
its search space for scripts.tune.

Everything else reads this table: the argparse flags (utils.train_args), the recipe keys and their checks
(utils.recipes), the flags a resumed model keeps and their checks (utils.resume), the algorithm's constructor
arguments (scripts.train.make_algo) and the tuner's search space (scripts.tune). A new hyper-parameter is one
entry here (and, if the library has no argument for it yet, that argument).

The ranges here are the command line's: the library checks its own arguments (torch_rl/algos/checks.py) with the
bounds that make sense to any caller; the ones here also refuse values far beyond any setting that trains (e.g.
``--lr 1e39`` overflows Adam's float32 step), so that a typo is one line before anything runs.
"""

import math
from dataclasses import dataclass

from torch_rl.algos.base import LR_SCHEDULES
from torch_rl.exploration import EXPLORATION_BONUSES
from utils.env import OBS_WRAPPERS
from utils.errors import integer, number
from utils.evaluation import EVAL_ENVS
from utils.format import IMAGE_ENCODINGS, OBS_VARIANTS

ALGOS = ("a2c", "ppo")
MAX_FRAMES = 10**13  # frames in total: days of the fastest batched GPU envs
MAX_LR = 1.0  # Adam's and RMSprop's step size: a step of 1 per parameter and update already diverges
MAX_LOSS_COEF = 100.0  # a loss or reward term weighed 100 times the policy loss drowns it
MAX_GRAD_NORM = 1e6  # beyond any gradient norm of these models: a larger one only means "no clipping"
MAX_OPTIM_EPS = 1.0  # the optimizers' epsilon: above 1 it, not the gradients, sets the step size
MAX_EPOCHS = 1000  # PPO epochs per update (3-30 in practice)
MAX_EVAL_EPISODES = 10**6


@dataclass(frozen=True)
class Search:
    """A tuning search space (Optuna's suggest_*): ``low``/``high`` for a number (``log``: sampled on a log
    scale, ``step`` for integers), or ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int | None = None
    choices: tuple | None = None


@dataclass(frozen=True)
class HyperParam:
    """One hyper-parameter. ``kind`` is "int", "float", "choice" or "switch" (a store_true flag); ``low``/``high``
    bound a number (``low_open``/``high_open``: the end itself excluded). ``default`` None means that it depends
    on other flags (``default_by_algo``) or on the model resumed (--obs). ``arg`` is the constructor argument it
    becomes (a str, or {algo: str}; None: scripts.train derives the argument itself). ``recipe``: a recipe may set
    it, and a resumed model keeps it unless it is given on the command line. ``group`` is its --help group."""

    name: str
    kind: str
    default: object
    help: str
    group: str = "algorithm"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    algos: tuple = ALGOS
    arg: str | dict | None = None
    recipe: bool = False
    kept: bool = False
    search: Search | None = None
    default_by_algo: dict | None = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def type(self):
        """The argparse ``type=``: it parses the command line and checks values from elsewhere (``.check``)."""
        if self.kind == "int":
            return integer(self.low, self.high)
        if self.kind == "float":
            return number(self.low, self.high, self.low_open, self.high_open)
        return None

    def arg_for(self, algo: str) -> str | None:
        """The constructor argument of ``algo`` it becomes, or None."""
        if algo not in self.algos:
            return None
        return self.arg.get(algo) if isinstance(self.arg, dict) else self.arg


HYPERPARAMS = (
    # --------------------------------------------------------------------------------- run size (main flags)
    HyperParam(
        "frames",
        "int",
        10**7,
        "train until this many frames in total",
        group="main",
        low=1,
        high=MAX_FRAMES,
        recipe=True,
        kept=True,
    ),
    HyperParam(
        "procs", "int", 16, "number of environments stepped in parallel", group="main", low=1, recipe=True, kept=True
    ),
    HyperParam(
        "batched",
        "switch",
        False,
        "step the env as batched torch tensors on --device (the ids listed in docs/batched-envs.md; "
        "torch_rl.envs.BatchedMiniGridEnv) instead of Minigrid's Python envs",
        group="main",
        recipe=True,
        kept=True,
    ),
    HyperParam(
        "compile",
        "switch",
        False,
        "run acting and the gradient step (on a CPU one graph, from the loss to the optimizer's step) as "
        "torch.compile graphs, and with --batched the env's view where it runs as tensor ops: faster where Python "
        "overhead sets the time (small models and batches), once compiled; the first update compiles and the log "
        "says how long it took (see docs/speed.md)",
        group="main",
        arg="compile",
        recipe=True,
    ),
    # ------------------------------------------------------------------------------------------------ model
    HyperParam(
        "obs",
        "choice",
        None,  # partial for a new model, a resumed model's own (utils.resume)
        "what a MiniGrid agent sees: partial (its 7x7 view of cell codes), full (the whole grid of cell codes, "
        f"Minigrid's {OBS_WRAPPERS['full']}), rgb (its view as pixels, {OBS_WRAPPERS['rgb']}) or rgb-full (the "
        f"whole grid as pixels, {OBS_WRAPPERS['rgb-full']}); the default model sizes itself to the image. "
        "Default: partial; a resumed model keeps its own, and evaluate and visualize read it from the model",
        group="model",
        choices=OBS_VARIANTS,  # kept as architecture (utils.resume)
    ),
    HyperParam(
        "recurrence",
        "int",
        1,
        "steps of back-propagation through time; >1 gives the model an LSTM memory",
        group="model",
        low=1,
        arg="recurrence",
        recipe=True,
        kept=True,
    ),
    HyperParam(
        "text", "switch", False, "add a GRU over the mission string (MiniGrid)", group="model", recipe=True, kept=True
    ),
    HyperParam(
        "image_encoding",
        "choice",
        "auto",
        "MiniGrid images as raw cell codes or one-hot per code (20 channels, so that a key and a "
        "ball differ clearly: memory tasks such as MiniGrid-MemoryS7 need it; slower, see docs/results.md). auto: "
        "onehot with memory (--recurrence > 1), else raw; a resumed model keeps its own",
        group="model",
        choices=("auto", *IMAGE_ENCODINGS),
        recipe=True,  # kept as architecture (utils.resume)
    ),
    # -------------------------------------------------------------------------------------------- algorithm
    HyperParam(
        "frames_per_proc",
        "int",
        None,
        "steps per env and update (default: 128 PPO, 5 A2C)",
        low=1,
        arg="num_frames_per_proc",
        recipe=True,
        kept=True,
        default_by_algo={"a2c": 5, "ppo": 128},
        search=Search(choices=(32, 64, 128, 256)),
    ),
    HyperParam(
        "discount",
        "float",
        0.99,
        "discount factor gamma",
        low=0.0,
        high=1.0,
        arg="discount",
        recipe=True,
        kept=True,
        search=Search(choices=(0.95, 0.98, 0.99, 0.995)),
    ),
    HyperParam(
        "lr",
        "float",
        0.001,
        "learning rate",
        low=0.0,
        high=MAX_LR,
        low_open=True,
        arg="lr",
        recipe=True,
        kept=True,
        search=Search(1e-4, 3e-3, log=True),
    ),
    HyperParam(
        "gae_lambda",
        "float",
        0.95,
        "lambda of GAE (1 means no GAE)",
        low=0.0,
        high=1.0,
        arg="gae_lambda",
        recipe=True,
        kept=True,
        search=Search(choices=(0.9, 0.95, 0.98, 1.0)),
    ),
    HyperParam(
        "entropy_coef",
        "float",
        0.01,
        "entropy bonus weight",
        low=0.0,
        high=MAX_LOSS_COEF,
        arg="entropy_coef",
        recipe=True,
        kept=True,
        search=Search(1e-4, 0.05, log=True),
    ),
    HyperParam(
        "value_loss_coef", "float", 0.5, "value loss weight", low=0.0, high=MAX_LOSS_COEF, arg="value_loss_coef"
    ),
    HyperParam(
        "max_grad_norm",
        "float",
        0.5,
        "gradient clipping norm",
        low=0.0,
        high=MAX_GRAD_NORM,
        low_open=True,
        arg="max_grad_norm",
    ),
    HyperParam(
        "optim_eps",
        "float",
        1e-8,
        "Adam / RMSprop epsilon",
        low=0.0,
        high=MAX_OPTIM_EPS,
        low_open=True,
        arg={"a2c": "rmsprop_eps", "ppo": "adam_eps"},
    ),
    HyperParam(
        "optim_alpha",
        "float",
        0.99,
        "RMSprop alpha (A2C)",
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        algos=("a2c",),
        arg="rmsprop_alpha",
    ),
    HyperParam(
        "clip_eps",
        "float",
        0.2,
        "PPO clipping epsilon: the ratio of new to old action probabilities is clipped to [1 - eps, 1 + eps]",
        low=0.0,
        high=1.0,
        low_open=True,
        algos=("ppo",),
        arg="clip_eps",
    ),
    HyperParam(
        "epochs",
        "int",
        4,
        "PPO epochs per update",
        low=1,
        high=MAX_EPOCHS,
        algos=("ppo",),
        arg="epochs",
        recipe=True,
        kept=True,
        search=Search(2, 10),
    ),
    HyperParam(
        "batch_size",
        "int",
        256,
        "PPO mini-batch size in frames",
        low=1,
        algos=("ppo",),
        arg="batch_size",
        recipe=True,
        kept=True,
        search=Search(choices=(64, 128, 256, 512)),
    ),
    HyperParam(
        # the constructor's normalize_advantages is this or --normalize's: scripts.train.make_algo decides
        "normalize_advantages",
        "switch",
        False,
        "PPO: standardise advantages per batch",
        algos=("ppo",),
    ),
    HyperParam(
        "normalize",
        "choice",
        "auto",
        "standardise flat observations, scale rewards by the return's std and (PPO) advantages; "
        "auto: on for continuous (Box) actions, the usual levers of continuous control",
        choices=("auto", "on", "off"),
    ),
    # ------------------------------------------------------------------- exploration, schedule, evaluation
    HyperParam(
        "explore",
        "choice",
        "none",
        "an exploration bonus added to the reward: rnd (random network distillation), count (1/sqrt of the "
        "visits of the exact observation), episodic (count, paid on a first visit in the episode only), noveld "
        "(episodic, paying only what the count bonus grew by from one observation to the next) or both (rnd + count)",
        group="exploration",
        choices=("none", *EXPLORATION_BONUSES),
        recipe=True,
        kept=True,
    ),
    HyperParam(
        "explore_coef",
        "float",
        0.01,
        "weight of the exploration bonus in the reward",
        group="exploration",
        low=0.0,
        high=MAX_LOSS_COEF,
        arg="exploration_coef",
        recipe=True,
        kept=True,
    ),
    HyperParam(
        "lr_schedule",
        "choice",
        "constant",
        "linear: the learning rate falls from --lr to 0 at --frames",
        group="exploration",
        choices=LR_SCHEDULES,
        arg="lr_schedule",
        recipe=True,
        kept=True,
        search=Search(choices=LR_SCHEDULES),
    ),
    HyperParam(
        "eval_interval",
        "int",
        0,
        "every N updates, run --eval-episodes episodes of the current policy on envs of their own, log their "
        "return, success rate and length, and keep the best model as status_best.pt (0: no evaluation)",
        group="exploration",
        low=0,
        kept=True,
        metavar="N",
    ),
    HyperParam(
        "eval_episodes",
        "int",
        20,
        "episodes per evaluation",
        group="exploration",
        low=1,
        high=MAX_EVAL_EPISODES,
        kept=True,
        metavar="K",
    ),
    HyperParam(
        "eval_env",
        "choice",
        "same",
        "evaluate on the training backend (same: the batched env with --batched) or on Minigrid's own envs",
        group="exploration",
        choices=EVAL_ENVS,
        kept=True,
    ),
)
BY_NAME = {param.name: param for param in HYPERPARAMS}
RECIPE_KEYS = tuple(param.name for param in HYPERPARAMS if param.recipe)
KEPT_SETTINGS = tuple(param.name for param in HYPERPARAMS if param.kept)


def add_flags(group, name_of_group: str) -> None:
    """Adds the flags of the hyper-parameters of ``name_of_group`` to the argparse parser or group ``group``."""
    for param in HYPERPARAMS:
        if param.group != name_of_group:
            continue
        if param.kind == "switch":
            group.add_argument(param.flag, action="store_true", help=param.help)
            continue
        options = dict(type=param.type(), default=param.default, help=param.help)
        if param.choices is not None:
            options["choices"] = param.choices
        if param.metavar is not None:
            options["metavar"] = param.metavar
        group.add_argument(param.flag, **{k: v for k, v in options.items() if v is not None or k == "default"})


def only_for(algo: str) -> tuple[str, ...]:
    """The hyper-parameters that ``algo`` has no use for."""
    return tuple(param.name for param in HYPERPARAMS if algo not in param.algos)


def constructor_kwargs(settings, algo: str) -> dict:
    """{constructor argument: value} of the hyper-parameters that ``algo``'s constructor takes as they are."""
    kwargs = {}
    for param in HYPERPARAMS:
        arg = param.arg_for(algo)
        if arg is not None:
            kwargs[arg] = getattr(settings, param.name)
    return kwargs


def searched(algo: str = "ppo") -> tuple[HyperParam, ...]:
    """The hyper-parameters scripts.tune searches for ``algo``."""
    return tuple(param for param in HYPERPARAMS if param.search is not None and algo in param.algos)


def suggest(trial, param: HyperParam):
    """A value of ``param`` for the Optuna ``trial``, from its search space."""
    space = param.search
    if space.choices is not None:
        return trial.suggest_categorical(param.name, list(space.choices))
    if param.kind == "int":
        return trial.suggest_int(param.name, int(space.low), int(space.high), step=space.step or 1, log=space.log)
    return trial.suggest_float(param.name, space.low, space.high, log=space.log)


def check_search_spaces() -> None:
    """Every search space lies within its flag's range (a sampled value always passes the flag's checks)."""
    for param in HYPERPARAMS:
        if param.search is None:
            continue
        values = param.search.choices or (param.search.low, param.search.high)
        check = param.type().check if param.type() is not None else None
        for value in values:
            if check is not None:
                check(value)
            elif param.choices is not None and value not in param.choices:
                raise ValueError(f"{param.name}: {value!r} is not one of {param.choices}")
        if param.search.log and min(values) <= 0 or any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ValueError(f"{param.name}: a log scale needs positive finite bounds")
