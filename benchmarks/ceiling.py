"""The best mean return any agent can get on a MiniGrid navigation env: each layout's shortest action sequence.

    python -m benchmarks.ceiling [--env MiniGrid-MultiRoom-N4-S5-v0] [--episodes 1000] [--seed 0]

A return is 1 - 0.9 * steps / max_steps, so where the shortest way to the goal takes many steps, no agent reaches
the suite's usual 0.9. This finds each layout's fewest steps by Dijkstra over (position, direction) on
Minigrid's own layouts, with left, right, forward and toggle: a closed, unlocked door costs one toggle before
the step through it (a door stays open, so that is exact). Envs with keys, boxes or lava in the way are out of
its scope. Each plan is replayed in the env, which must end the episode with that reward.
"""

import heapq
import statistics

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
from minigrid.minigrid_env import MiniGridEnv

from utils.env import check_env_id
from utils.errors import ArgumentParser, UsageError, cli, integer

LEFT, RIGHT, FORWARD, TOGGLE = 0, 1, 2, 5
STEP = [(1, 0), (0, 1), (-1, 0), (0, -1)]  # Minigrid's directions: right, down, left, up


def shortest_plan(env) -> list[int] | None:
    """The fewest actions from the agent's state to the goal on ``env``'s (unwrapped, just reset) grid; None if
    the goal cannot be reached by walking and opening unlocked doors."""
    start = (*env.agent_pos, env.agent_dir)
    cost, parent = {start: 0}, {start: None}
    queue = [(0, start)]
    while queue:
        steps, state = heapq.heappop(queue)
        if steps > cost[state]:
            continue
        x, y, direction = state
        dx, dy = STEP[direction]
        cell = env.grid.get(x + dx, y + dy)
        if cell is not None and cell.type == "goal":
            plan, at = [], state
            while parent[at] is not None:
                at, actions = parent[at]
                plan[:0] = actions
            return plan + [FORWARD]
        moves = [((x, y, (direction - 1) % 4), [LEFT]), ((x, y, (direction + 1) % 4), [RIGHT])]
        if cell is None or (cell.type == "door" and cell.is_open):
            moves.append(((x + dx, y + dy, direction), [FORWARD]))
        elif cell.type == "door" and not cell.is_locked:
            moves.append(((x + dx, y + dy, direction), [TOGGLE, FORWARD]))
        for nxt, actions in moves:
            if steps + len(actions) < cost.get(nxt, float("inf")):
                cost[nxt], parent[nxt] = steps + len(actions), (state, actions)
                heapq.heappush(queue, (steps + len(actions), nxt))
    return None


def best_returns(env_id: str, episodes: int, seed: int = 0) -> list[float]:
    """The best return of each of ``episodes`` layouts (reset seeds ``seed``, ``seed + 1``...), each checked by
    replaying its plan in the env. A UsageError for an env out of this tool's scope."""
    env = gym.make(env_id)
    if not isinstance(env.unwrapped, MiniGridEnv):
        raise UsageError(f"--env {env_id} is not a MiniGrid env: the planner reads Minigrid's grid")
    returns = []
    for layout in range(seed, seed + episodes):
        env.reset(seed=layout)
        plan = shortest_plan(env.unwrapped)
        if plan is None:
            raise UsageError(
                f"--env {env_id}: layout {layout} has no way to the goal by walking and opening unlocked doors; "
                "this tool plans navigation envs only (no keys, boxes or objects to move)"
            )
        # a plan that fails to replay is a bug of the planner, not a user mistake
        for action in plan[:-1]:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                raise RuntimeError(f"{env_id}: the plan of layout {layout} ended the episode before its last step")
        _, reward, terminated, _, _ = env.step(plan[-1])
        if not (terminated and reward > 0):
            raise RuntimeError(f"{env_id}: the plan of layout {layout} did not reach the goal")
        returns.append(float(reward))
    env.close()
    return returns


@cli
def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="MiniGrid-MultiRoom-N4-S5-v0", help="a MiniGrid navigation env id")
    parser.add_argument("--episodes", type=integer(1), default=1000, help="layouts to plan (default 1000)")
    parser.add_argument("--seed", type=integer(0), default=0, help="the first layout's reset seed")
    args = parser.parse_args(argv)
    check_env_id(args.env)
    returns = best_returns(args.env, args.episodes, args.seed)
    mean = statistics.fmean(returns)
    share = sum(r >= 0.9 for r in returns) / len(returns)
    print(
        f"{args.env}: best mean return {mean:.3f} over {len(returns)} layouts (min {min(returns):.3f}, max "
        f"{max(returns):.3f}); layouts where 0.9 is reachable: {share:.1%}"
    )


if __name__ == "__main__":
    main()
