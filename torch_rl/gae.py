"""Generalized Advantage Estimation with Gymnasium's terminated/truncated distinction."""

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    last_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor,
    discount: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns for a rollout of T steps of N envs (all arguments but the last two are (T, N)).

    ``values[t]`` is V(s_t); ``last_values`` (N,) is V(s_T) of the observation after the rollout.
    Where an episode ended at step t, the next row of ``values`` already belongs to the new episode, so:
    - ``terminated[t]``: the episode really ended, nothing follows: bootstrap value 0;
    - ``truncated[t]`` (time limit, not terminated): the episode would have gone on, so bootstrap from the
      value of its final observation, ``final_values[t]``;
    and in both cases the advantage recursion stops there.
    """
    terminated = terminated.bool()
    truncated = truncated.bool()
    next_values = torch.cat([values[1:], last_values.unsqueeze(0)])
    next_values = torch.where(truncated, final_values, next_values)
    next_values = torch.where(terminated, torch.zeros_like(next_values), next_values)
    continues = (~(terminated | truncated)).to(values.dtype)
    deltas = rewards + discount * next_values - values
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(last_values)
    for t in reversed(range(len(rewards))):
        running = deltas[t] + discount * gae_lambda * continues[t] * running
        advantages[t] = running
    return advantages, advantages + values
