"""benchmarks.ceiling plans the fewest actions to the goal: exact on a layout worked out by hand, and every plan
replays in Minigrid's own env to the goal (best_returns asserts it)."""

import gymnasium as gym
import pytest

from benchmarks.ceiling import FORWARD, RIGHT, TOGGLE, best_returns, shortest_plan


def test_the_plan_on_empty_5x5_is_the_five_steps_worked_out_by_hand():
    env = gym.make("MiniGrid-Empty-5x5-v0")
    env.reset(seed=0)  # agent at (1, 1) facing right, goal at (3, 3)
    assert shortest_plan(env.unwrapped) == [FORWARD, FORWARD, RIGHT, FORWARD, FORWARD]
    assert best_returns("MiniGrid-Empty-5x5-v0", 1) == [pytest.approx(1 - 0.9 * 5 / 100)]


def test_multiroom_plans_open_each_door_and_replay_to_the_goal():
    env = gym.make("MiniGrid-MultiRoom-N2-S4-v0")
    env.reset(seed=3)
    assert shortest_plan(env.unwrapped).count(TOGGLE) == 1  # two rooms, one door between them
    returns = best_returns("MiniGrid-MultiRoom-N4-S5-v0", 20)
    assert all(0.6 < r < 0.9 for r in returns)  # the shortest way through four rooms is long
