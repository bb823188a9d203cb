"""What the fidelity tests compare after each step: one row of the batched env against a real Minigrid env's step."""

from __future__ import annotations

import numpy as np


def assert_same_step(batched, i, real, ctx):
    """Row ``i`` of ``batched`` (``env.step``'s (obs, reward, terminated, truncated, info)) equals ``real`` (one
    Minigrid env's step): image, direction and mission (of the final observation where the episode ended), reward
    as float32, terminated and truncated."""
    obs, reward, terminated, truncated, info = batched
    real_obs, real_reward, real_terminated, real_truncated, _ = real
    src = info["final_obs"] if (real_terminated or real_truncated) else obs
    np.testing.assert_array_equal(src["image"][i].cpu().numpy(), real_obs["image"], err_msg=ctx)
    assert int(src["direction"][i]) == real_obs["direction"], ctx
    assert src["mission"][i] == real_obs["mission"], ctx
    assert reward[i].item() == np.float32(real_reward), ctx
    assert (bool(terminated[i]), bool(truncated[i])) == (real_terminated, real_truncated), ctx
