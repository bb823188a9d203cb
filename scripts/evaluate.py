"""Evaluate a trained agent: python -m scripts.evaluate --env MiniGrid-DoorKey-5x5-v0 --model DoorKey

Runs exactly --episodes finished episodes, --procs envs in parallel, and prints the frames, FPS, duration,
the return and episode length (frames) mean/std/min/max, and the success rate. An episode *succeeds* if its
return is > 0 (MiniGrid gives a positive reward only on reaching the goal; for envs whose rewards are never
positive, such as Pendulum-v1, the success rate is 0 and the return is the number to read).

Each env runs a fixed share of the episodes (env i: episodes // procs, plus one for the first
episodes % procs envs), so that the sample is not biased towards short episodes, as "the first N episodes to
finish" would be. The same --seed gives the same episodes: a run with more --episodes repeats the shorter run's
episodes and adds some, so it does not confirm a difference it showed; compare other seeds for that.

--onnx FILE evaluates a graph written by scripts.export instead of a model folder (onnxruntime plays it: the export
extra), so that an export is seen to act as its model does: with --argmax and the same --seed, its returns are the
model's.

--best evaluates the model's best checkpoint (status_best.pt, kept when training evaluates, --eval-interval).
--worst-episodes-to-show N also prints the N episodes of lowest return, with their lengths. An env whose step or
reset takes longer than --env-timeout seconds stops the evaluation with one line naming it (exit code 1).

--json FILE writes the numbers as JSON (FILE "-": stdout, and nothing else is printed there). Its keys: env,
model, argmax, seed, procs, episodes, frames, fps, duration, return_mean, return_std, return_min,
return_max, num_frames_mean, num_frames_std, num_frames_min, num_frames_max, success_rate, returns (per
episode), num_frames (per episode); with --onnx, model is null and onnx is the graph's file.
"""

import functools
import json
import os
import sys
import time

import torch

import torch_rl
from torch_rl.vec_env import VectorEnvBatch, report_to_stderr
from utils import checkpoint as checkpoints
from utils.agent import Agent, add_agent_arguments
from utils.env import check_batched_obs, check_env_id, make_batched_env, make_envs
from utils.errors import (
    MAX_WORKERS,
    SEED,
    ArgumentParser,
    HelpFormatter,
    UsageError,
    add_env_timeout_argument,
    check_procs_fit_in_memory,
    cli,
    integer,
)
from utils.evaluation import episode_statistics, run_episodes
from utils.export import OnnxPolicy, graph_obs, require_onnx
from utils.outputs import check_output_file, write_output_file
from utils.seeding import seed as seed_everything
from utils.storage import get_model_dir

MAX_EPISODES = 10**7  # their returns and lengths are kept in memory


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m scripts.evaluate", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--env", required=True, help="Gymnasium env id, e.g. MiniGrid-DoorKey-5x5-v0 or Pendulum-v1")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model folder name, in storage/ or $TORCH_RL_STORAGE")
    which.add_argument(
        "--onnx", metavar="FILE", help="evaluate this graph, written by scripts.export, instead of a --model"
    )
    p.add_argument(
        "--episodes", type=integer(1, MAX_EPISODES), default=100, help="number of episodes to evaluate (default: 100)"
    )
    add_agent_arguments(p)
    p.add_argument(
        "--procs", type=integer(1), default=16, help="envs run in parallel (default: 16; at most --episodes are used)"
    )
    p.add_argument(
        "--batched",
        action="store_true",
        help="evaluate on torch_rl's BatchedMiniGridEnv (the ids listed in docs/batched-envs.md) instead of Minigrid",
    )
    p.add_argument(
        "--workers",
        type=integer(0, MAX_WORKERS),
        default=None,
        help="worker processes stepping the envs (default: none on <= 2 cores, else one per core "
        "but one; 0: in this process)",
    )
    p.add_argument(
        "--seed", type=SEED, default=0, help="random seed of the envs and of the action sampling, from 0 to 2**32 - 1"
    )
    add_env_timeout_argument(p, "the evaluation")
    p.add_argument(
        "--worst-episodes-to-show",
        type=integer(0, MAX_EPISODES),
        default=0,
        metavar="N",
        help="also print the N episodes of lowest return, with their returns and lengths (0: none)",
    )
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON to FILE ('-': stdout)")
    return p.parse_args(argv)


def validate(args):
    """What parse_args' types cannot check; before any episode runs, so that a bad --json wastes no evaluation."""
    check_procs_fit_in_memory(min(args.procs, args.episodes))
    if args.worst_episodes_to_show and args.json == "-":
        raise UsageError(
            "--worst-episodes-to-show prints to stdout, which --json - keeps for the JSON (it holds every episode's "
            "return and length): drop one of them"
        )
    if args.onnx is not None:
        check_onnx_args(args)
    if args.json not in (None, "-"):  # never a file of a model folder, nor a FIFO that would block at the end
        check_output_file(args.json, "--json", [get_model_dir(args.model)] if args.model is not None else [])
    check_env_id(args.env)


def check_onnx_args(args):
    """--onnx's own checks: a graph has one policy and runs on real envs; onnxruntime is installed."""
    if args.best:
        raise UsageError("--best picks a checkpoint of a --model, and an --onnx graph holds one policy: drop --best")
    if args.batched:
        raise UsageError("--onnx plays the graph on Minigrid's own envs, not the batched ones: drop --batched")
    if not os.path.isfile(args.onnx):
        raise UsageError(f"--onnx {args.onnx}: no such file; write one with python -m scripts.export --model NAME")
    require_onnx()


def summarize(args, procs, returns, lengths, duration):
    frames = int(sum(lengths))
    result = {
        "env": args.env,
        "model": args.model,
        **({"onnx": args.onnx} if args.onnx is not None else {}),
        "argmax": args.argmax,
        "seed": args.seed,
        "procs": procs,
        "episodes": len(returns),
        "frames": frames,
        "fps": frames / max(duration, 1e-9),
        "duration": duration,
    }
    result |= episode_statistics(returns, lengths)
    result["returns"] = list(returns)
    result["num_frames"] = list(lengths)
    return result


def format_result(r, best=False):
    policy = f"model {r['model']}" if r["model"] is not None else f"ONNX graph {r['onnx']}"
    return "\n".join(
        [
            f"{r['env']}, {policy}{' (best checkpoint)' if best else ''}: {r['episodes']} episodes, "
            f"{'argmax' if r['argmax'] else 'sampled'} actions, {r['procs']} envs, seed {r['seed']}",
            f"F {r['frames']} | FPS {r['fps']:.0f} | D {r['duration']:.1f} s",
            f"return         mean {r['return_mean']:.3f} | std {r['return_std']:.3f} | "
            f"min {r['return_min']:.3f} | max {r['return_max']:.3f}",
            f"frames/episode mean {r['num_frames_mean']:.1f} | std {r['num_frames_std']:.1f} | "
            f"min {r['num_frames_min']:.0f} | max {r['num_frames_max']:.0f}",
            f"success rate   {100 * r['success_rate']:.1f}% (episodes with return > 0)",
        ]
    )


def format_worst_episodes(r, n):
    """The ``n`` episodes of lowest return (the first of equal ones first), as the starter files printed them."""
    order = sorted(range(len(r["returns"])), key=lambda i: r["returns"][i])[:n]
    lines = [f"{len(order)} worst episodes:"]
    lines += [f"- episode {i}: return {r['returns'][i]:.3f}, {r['num_frames'][i]} frames" for i in order]
    return "\n".join(lines)


def env_hung(message, env_timeout):
    """--env-timeout fired with envs stepped in this process (called from the watchdog thread, which then ends the
    process with exit code 1: a stuck env call cannot be interrupted)."""
    report_to_stderr(
        f"an environment hung: {message} (raise --env-timeout, now {env_timeout:g} s, if its steps are this slow)"
    )


@cli
def main(argv=None):
    args = parse_args(argv)
    validate(args)
    torch.set_num_threads(1)
    if args.onnx is None:
        model_dir = get_model_dir(args.model)
        checkpoint = checkpoints.load(model_dir, best=args.best)  # a missing or broken model fails here, before envs
        obs = checkpoint.architecture()["obs"]  # what the model was trained to see (scripts.train --obs)
        if args.batched:
            check_batched_obs(obs, f"the model {args.model} was trained with it: drop --batched")
    else:
        obs = graph_obs(args.onnx)  # what its model was trained to see, from the graph's metadata
    seed_everything(args.seed)

    procs = min(args.procs, args.episodes)
    if args.batched:
        env_batch = VectorEnvBatch(make_batched_env(args.env, procs, seed=args.seed))
    else:
        env_batch = torch_rl.ParallelEnv(
            make_envs(args.env, procs, seed=args.seed, obs=obs),
            num_workers=args.workers,
            timeout=args.env_timeout or None,
            on_timeout=functools.partial(env_hung, env_timeout=args.env_timeout),  # envs stepped in this process
        )
    obs_space, action_space = env_batch.single_observation_space, env_batch.single_action_space
    try:
        if args.onnx is not None:
            agent = OnnxPolicy(args.onnx, obs_space, action_space, argmax=args.argmax, num_envs=procs)
        else:
            agent = Agent(obs_space, action_space, model_dir, argmax=args.argmax, num_envs=procs, checkpoint=checkpoint)
    except BaseException:
        env_batch.close()
        raise
    try:  # an env that fails (EnvWorkerError) ends the script with one line, exit code 1 (utils.errors.cli)
        start = time.time()
        returns, lengths, _ = run_episodes(env_batch, agent, args.episodes, env_batch.single_action_space)
        duration = time.time() - start
    finally:
        env_batch.close()

    result = summarize(args, procs, returns, lengths, duration)
    if args.json == "-":
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return result
    print(format_result(result, args.best))
    if args.worst_episodes_to_show:
        print(format_worst_episodes(result, args.worst_episodes_to_show))
    if args.json is not None:
        write_output_file(args.json, "--json", (json.dumps(result, indent=2) + "\n").encode())
        print(f"results written to {args.json}")
    return result


if __name__ == "__main__":
    main()
