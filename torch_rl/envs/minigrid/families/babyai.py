"""Every BabyAI level (``minigrid/envs/babyai/``): one rule, ``RoomGridLevel.step``, over layouts and
instructions from each level's own generator.

No BabyAI level overrides ``step``: each is a ``RoomGridLevel``, whose step is Minigrid's generic one followed
by the instruction's verifier (success: reward ``1 - 0.9 * step_count / max_steps``, failure: reward 0, both
end the episode). So the levels differ only in what their ``reset`` makes, which the bank takes from Minigrid
itself (with its rejection sampling), encoded by :mod:`..instructions`; the verdict runs on tensors in
:mod:`..verifier`. Each episode has its own ``max_steps``, computed by Minigrid from its instruction.
"""

from __future__ import annotations

from typing import Any

import torch

from torch_rl.envs.minigrid import instructions
from torch_rl.envs.minigrid.family import BankFamily
from torch_rl.envs.minigrid.verifier import BatchedVerifier, pack

# The longest sentence BabyAI's grammar makes: two "and"s of two "put next to"s in sequence, each "put" + an
# object of up to 7 words ("the red ball in front of you") + "next to" + another: 4 * 17 + 2 + 2 = 72 words
MAX_BABYAI_MISSION_WORDS = 72


class BabyAIFamily(BankFamily):
    variable_max_steps = True
    box_contents = True  # KeyInBox hides its key in a box
    max_mission_words = MAX_BABYAI_MISSION_WORDS

    @classmethod
    def from_registration(cls, entry_point: str, kwargs: dict[str, Any]) -> BabyAIFamily:
        family = cls.__new__(cls)
        family.minigrid_class = entry_point
        family.__init__(**kwargs)
        return family

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_steps = 0 if self.max_steps is None else int(self.max_steps)  # the real one comes per episode

    def layout_extras_spec(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        return instructions.extras_spec(self.height, self.width)

    def layout_extras(self, env: Any) -> dict[str, Any]:
        return instructions.encode(env)

    def check_layout_extras(self, layouts: dict[str, Any]) -> None:
        instructions.check_arrays(layouts, self.height, self.width)

    def pack_layout_extras(self, extras: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return pack(extras, self.height, self.width)

    def init_state(self, env) -> None:
        self.verifier = BatchedVerifier(env)

    def reset_rows(self, env, rows, layouts) -> None:
        self.verifier.load(rows, layouts.extras)

    def load_minigrid_state(self, env, i, real) -> None:
        extras = {k: torch.as_tensor(v, device=env.device).unsqueeze(0) for k, v in instructions.encode(real).items()}
        self.verifier.load(torch.tensor([i], device=env.device), pack(extras, self.height, self.width), from_bank=False)

    def after_step(self, env, actions, context, reward, terminated):
        success, failure = self.verifier.after_step(actions)
        reward = torch.where(success, env.success_reward(), torch.where(failure, 0.0, reward))
        return reward, terminated | success | failure
