"""Watch a trained agent: python -m scripts.visualize --env MiniGrid-DoorKey-5x5-v0 --model DoorKey

Without --gif the env is shown in its own window (render_mode="human"; needs a display). With --gif FILE the
frames are rendered off-screen (render_mode="rgb_array") and written as an animated GIF, which works headless,
for MiniGrid as for other envs that render rgb_array frames (e.g. Pendulum-v1). Each episode's return is printed.
--shift N resets the env N more times before the first episode shown, to look at other layouts of the same --seed.
--wandb [PROJECT], with --gif, also logs the GIF and the episodes' mean return to Weights & Biases, as a run named
after the model, in the group of its training runs (the wandb extra: pip install -e ".[wandb]").
"""

import os
import sys
import time

import numpy as np
import torch

from torch_rl.vec_env import actions_for_env
from utils import checkpoint as checkpoints
from utils.agent import Agent, add_agent_arguments
from utils.env import check_env_id, make_env
from utils.errors import (
    EXIT_INTERRUPTED,
    MAX_PAUSE,
    SEED,
    ArgumentParser,
    HelpFormatter,
    UsageError,
    cli,
    integer,
    number,
)
from utils.outputs import check_output_file, write_output_file
from utils.seeding import seed as seed_everything
from utils.storage import get_model_dir
from utils.tracking import add_wandb_argument, log_gif, require_wandb

MAX_EPISODES = 10**4  # a GIF keeps every frame in memory
MAX_SHIFT = 10**6  # resets before the first episode: beyond that, choose another --seed


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m scripts.visualize", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--env", required=True, help="Gymnasium env id, e.g. MiniGrid-DoorKey-5x5-v0 or Pendulum-v1")
    p.add_argument("--model", required=True, help="model folder name, in storage/ or $TORCH_RL_STORAGE")
    add_agent_arguments(p)
    p.add_argument(
        "--episodes", type=integer(1, MAX_EPISODES), default=1, help="number of episodes to show (default: 1)"
    )
    p.add_argument(
        "--seed", type=SEED, default=0, help="random seed of the env and of the action sampling, from 0 to 2**32 - 1"
    )
    p.add_argument(
        "--shift",
        type=integer(0, MAX_SHIFT),
        default=0,
        metavar="N",
        help="reset the env N times before the first episode shown, to look at other layouts of the same --seed",
    )
    p.add_argument(
        "--gif",
        metavar="NAME",
        default=None,
        help="write the episodes to the animated GIF NAME (NAME.gif if NAME does not end in .gif) instead of "
        "showing a window (works headless)",
    )
    p.add_argument(
        "--pause",
        type=number(0.0, MAX_PAUSE),
        default=0.1,
        help="seconds between frames, in the window and in the GIF (default: 0.1)",
    )
    add_wandb_argument(p, "the GIF (with --gif)")
    return p.parse_args(argv)


def has_display():
    """Whether a window can be opened: always outside Linux/BSD, else when X11 or Wayland is there."""
    if not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def gif_path(name):
    """The file --gif NAME writes: NAME itself if it ends in .gif, else NAME.gif (as the starter files did)."""
    return name if name.lower().endswith(".gif") else name + ".gif"


def validate(args):
    """What parse_args' types cannot check; creates nothing."""
    if args.wandb is not None:
        if args.gif is None:
            raise UsageError("--wandb logs the GIF that --gif writes: add --gif NAME")
        require_wandb()
    if args.gif is None and not has_display():
        raise UsageError(
            "no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set); "
            "pass --gif NAME to write an animated GIF instead"
        )
    if args.gif is not None:
        if os.path.isdir(args.gif) or args.gif.endswith(os.sep):
            raise UsageError(f"cannot write --gif {args.gif}: it is a folder; give a file name, e.g. --gif agent")
        args.gif = gif_path(args.gif)
        check_output_file(args.gif, "--gif", [get_model_dir(args.model)])
    check_env_id(args.env)


def make_render_env(env_id, render_mode, seed, obs="partial"):
    env = make_env(env_id, seed=seed, render_mode=render_mode, obs=obs)  # a missing renderer (pygame): UsageError
    if render_mode not in (env.metadata.get("render_modes") or []):
        env.close()
        raise UsageError(
            f"{env_id} cannot render in mode {render_mode!r} (it supports {env.metadata.get('render_modes') or 'none'})"
        )
    return env


def render_frame(env):
    frame = env.render()
    if frame is None or np.asarray(frame).ndim != 3:
        raise UsageError(f"{env.spec.id} returned no RGB frame from render(); it cannot be written to a GIF")
    return np.asarray(frame, dtype=np.uint8)


def write_gif(path, frames, pause):
    """Writes the GIF whole or not at all (utils.outputs.write_output_file). It is encoded in memory first: imageio
    writing to a file that a full disk cuts short prints a traceback from its writer's __del__ after the error."""
    import imageio.v3 as iio

    # GIF frame durations are in milliseconds, with a resolution of 10 ms; loop=0 repeats forever.
    duration = max(10, int(round(pause * 1000 / 10)) * 10)
    data = iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=duration, loop=0)
    write_output_file(path, "--gif", data)


@cli
def main(argv=None):
    args = parse_args(argv)
    validate(args)
    torch.set_num_threads(1)
    model_dir = get_model_dir(args.model)
    checkpoint = checkpoints.load(model_dir, best=args.best)
    seed_everything(args.seed)

    gif = args.gif is not None
    if gif:  # off-screen: pygame-based renderers (e.g. Pendulum-v1) need no display and do not complain of none
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    # the model's own --obs: the agent sees what it was trained on, the frames show the env as always
    env = make_render_env(args.env, "rgb_array" if gif else "human", args.seed, checkpoint.architecture()["obs"])
    agent = Agent(
        env.observation_space, env.action_space, model_dir, argmax=args.argmax, num_envs=1, checkpoint=checkpoint
    )
    frames = []
    returns = []
    interrupted = False
    try:
        obs, _ = env.reset(seed=args.seed)
        for _ in range(args.shift):
            obs, _ = env.reset()
        for episode in range(1, args.episodes + 1):
            if episode > 1:
                obs, _ = env.reset()
            if gif:
                frames.append(render_frame(env))
            episode_return, length, done = 0.0, 0, False
            while not done:
                action = actions_for_env(agent.get_actions([obs]), env.action_space)[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                done = terminated or truncated
                agent.analyze_feedback(done)
                episode_return += float(reward)
                length += 1
                if gif:
                    frames.append(render_frame(env))
                elif args.pause > 0:
                    time.sleep(args.pause)
            returns.append(episode_return)
            print(f"episode {episode}: return {episode_return:.3f}, {length} frames", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted", file=sys.stderr)
    finally:
        env.close()
    if gif and frames:
        write_gif(args.gif, frames, args.pause)
        print(f"{len(frames)} frames written to {args.gif}")
        if args.wandb is not None and returns:
            shown = {key: getattr(args, key) for key in ("env", "seed", "shift", "episodes", "argmax", "best", "gif")}
            config = dict(checkpoint.config.get(checkpoints.ARGS, {})) | {"visualize": shown}
            log_gif(args.wandb, args.model, config, args.gif, returns)
            print(f"GIF logged to Weights & Biases, project {args.wandb}")
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)
    return returns


if __name__ == "__main__":
    main()
