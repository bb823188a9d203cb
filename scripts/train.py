"""Train an A2C or PPO agent: python -m scripts.train --algo ppo --env MiniGrid-DoorKey-5x5-v0 --model DoorKey

The model folder (storage/NAME, or $TORCH_RL_STORAGE/NAME) is created, or loaded and resumed where it stopped.
Under torchrun (torchrun --nproc-per-node K -m scripts.train ...) each rank steps --procs envs of its own and
gradients are averaged over ranks; rank 0 logs and saves, frames and FPS count all ranks.
"""

import functools
import sys

import gymnasium as gym
import torch

import torch_rl
from model import ACModel
from torch_rl.exploration import make_exploration_bonus
from utils.distributed_setup import decided_by_rank0, init_distributed
from utils.env import make_batched_env, make_envs
from utils.errors import UsageError, cli
from utils.evaluation import Evaluator, make_eval_env_batch
from utils.format import get_obss_preprocessor, has_mission
from utils.hyperparams import constructor_kwargs
from utils.recipes import recipe_line
from utils.resume import open_checkpoint, restore_model
from utils.seeding import seed as seed_everything
from utils.settings import resolve_settings
from utils.storage import get_model_dir
from utils.tracking import require_wandb
from utils.training import EvaluationDuringTraining, Trainer, env_hung, exit_now


def make_algo(
    args, envs, acmodel, preprocess_obss, device, normalize=False, on_env_timeout=None, world_size=1, bonus=None
):
    if isinstance(envs, list):  # Python envs: stepped with --env-timeout
        envs = torch_rl.ParallelEnv(
            envs, num_workers=args.workers, timeout=args.env_timeout or None, on_timeout=on_env_timeout
        )
    # The hyper-parameters come from their table (utils.hyperparams), by keyword: the positional order stays
    # torch-ac's. What is derived from other flags is added here.
    kwargs = constructor_kwargs(args, args.algo) | dict(
        device=device,
        preprocess_obss=preprocess_obss,
        num_workers=args.workers,
        normalize_rewards=normalize,
        exploration_bonus=bonus,
        total_frames=max(1, args.frames // world_size),  # each rank's share: the schedule counts its own frames
    )
    if args.algo == "a2c":
        return torch_rl.A2CAlgo(envs, acmodel, **kwargs)
    return torch_rl.PPOAlgo(envs, acmodel, normalize_advantages=args.normalize_advantages or normalize, **kwargs)


def make_bonus(args, obs_space):
    """The exploration bonus of --explore (None for none), sized for the model's input (``obs_space``: as
    get_obss_preprocessor gives it)."""
    if args.explore == "none":
        return None
    shape = obs_space["image"] if "image" in obs_space else (obs_space["flat"],)
    return make_exploration_bonus(args.explore, torch.zeros(1, *shape), seed=args.seed)


def make_evaluation(args, device, rank):
    """--eval-interval's evaluation (rank 0 runs the episodes), or None."""
    if args.eval_interval == 0:
        return None
    evaluator = None
    if rank == 0:
        num_envs = min(args.procs, args.eval_episodes)
        env_batch = make_eval_env_batch(
            args.env, num_envs, args.batched, args.eval_env, device, args.seed, obs=args.obs
        )
        evaluator = Evaluator(env_batch, args.eval_episodes, args.seed)
    stop_at_return = args.stop_at_return
    return EvaluationDuringTraining(evaluator, args.eval_interval, stop_at_return)


def open_model(args):
    """Joins the torchrun job, if any, and opens the model folder of ``args`` (rank 0 reads it, the others get
    what it found): ((checkpoint, model_dir, rank, world_size, distributed device or None), the flags it resolves
    ({flag: value}: utils.resume.RESOLVED_FLAGS), the settings the resumed model keeps), as
    utils.settings.resolve_settings expects."""
    if args.wandb is not None:
        require_wandb()  # an optional extra: a missing one is one line before anything is made
    rank, world_size, dist_device = init_distributed(args.device)
    model_dir = get_model_dir(args.model)
    checkpoint, resolved, kept = decided_by_rank0(lambda: open_checkpoint(args, model_dir), rank, world_size)
    return (checkpoint, model_dir, rank, world_size, dist_device), resolved, kept


@cli
def main(argv=None):
    args, kept, opened = resolve_settings(argv, __doc__, open_model)
    checkpoint, model_dir, rank, world_size, dist_device = opened

    seed_everything(args.seed + checkpoint.update + 7919 * rank)
    torch.set_num_threads(args.threads)
    device = dist_device or torch.device(args.device)

    env_seed = args.seed + 1000 * checkpoint.update + 1_000_000 * rank
    if args.batched:
        # the layouts' seed stays the run's --seed: a resumed run keeps its layouts and their cache
        envs = make_batched_env(
            args.env, args.procs, device, seed=env_seed, layout_seed=args.seed, compile=args.compile
        )
        observation_space, action_space = envs.single_observation_space, envs.single_action_space
    else:
        envs = make_envs(args.env, args.procs, seed=env_seed, obs=args.obs)
        observation_space, action_space = envs[0].observation_space, envs[0].action_space
    if args.text and not has_mission(observation_space):
        raise UsageError(f"--text needs an env with a mission string, and {args.env} has none; drop --text")
    continuous = isinstance(action_space, gym.spaces.Box)
    normalize = args.normalize == "on" or (args.normalize == "auto" and continuous)
    obs_space, preprocess_obss = get_obss_preprocessor(
        observation_space, normalize, use_text=args.text, image_encoding=args.image_encoding
    )
    acmodel = ACModel(obs_space, action_space, args.use_memory, args.text)
    restore_model(acmodel, preprocess_obss, checkpoint, args)
    on_env_timeout = functools.partial(env_hung, model_dir=model_dir, env_timeout=args.env_timeout)
    bonus = make_bonus(args, obs_space)
    algo = make_algo(args, envs, acmodel, preprocess_obss, device, normalize, on_env_timeout, world_size, bonus)
    trainer = Trainer(algo, preprocess_obss, checkpoint, args, model_dir, rank, world_size)
    try:
        trainer.evaluation = make_evaluation(args, device, rank)
    except BaseException:
        trainer.cleanup.close()
        raise
    if trainer.evaluation is not None:
        trainer.cleanup.callback(trainer.evaluation.close)
    trainer.start(f"device {device}, {args.procs} envs{f' x {world_size} ranks' if world_size > 1 else ''}")
    line = recipe_line(args, kept)
    if line:
        trainer.log.line(line)
    code = trainer.run()
    if world_size > 1:
        exit_now(code)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
