"""Random-action env steps/s of one Minigrid env, with and without FastMiniGridObs.

    python -m benchmarks.fast_obs [--steps 20000] [--repeats 5] [--env ID ...]

Both variants step the same env id with the same seeds and random actions
(biased toward forward/pickup/drop/toggle), resetting on episode end; the
best of ``--repeats`` timed runs is reported (the machine may be shared).
"""

import argparse
import time

import gymnasium as gym
import minigrid  # noqa: F401  (registers the envs)
import numpy as np

from torch_rl.envs.fast_obs import FastMiniGridObs

ACTION_P = np.array([0.12, 0.12, 0.34, 0.14, 0.10, 0.16, 0.02])


def steps_per_s(env, steps, seed=0):
    rng = np.random.default_rng(seed)
    actions = rng.choice(len(ACTION_P), size=steps, p=ACTION_P).tolist()
    env.reset(seed=seed)
    step, reset = env.step, env.reset
    t0 = time.perf_counter()
    for a in actions:
        _, _, te, tr, _ = step(a)
        if te or tr:
            reset()
    return steps / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--env", nargs="+", default=["MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-8x8-v0"])
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    for env_id in args.env:
        plain = gym.make(env_id)
        fast = FastMiniGridObs(gym.make(env_id))
        best = {"minigrid": 0.0, "fast": 0.0}
        for r in range(args.repeats):  # interleaved so both see the same machine load
            best["minigrid"] = max(best["minigrid"], steps_per_s(plain, args.steps, seed=r))
            best["fast"] = max(best["fast"], steps_per_s(fast, args.steps, seed=r))
        print(
            f"{env_id}: minigrid {best['minigrid']:,.0f} steps/s, FastMiniGridObs {best['fast']:,.0f} steps/s, "
            f"ratio {best['fast'] / best['minigrid']:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
