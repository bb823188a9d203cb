"""Exploration bonuses: intrinsic rewards for observations that are new, added to the env's reward.

Both work on the model's input (the preprocessed observations) of a whole rollout at once, on its device:
- :class:`RNDBonus`, random network distillation (Burda et al. 2018): the error of a trained predictor of a fixed
  random network's output, large where the predictor has seen little;
- :class:`CountBonus`: ``1 / sqrt(n)`` where ``n`` counts the times this exact observation was seen;
- :class:`EpisodicCountBonus`: the same, paid on an observation's first visit in an episode only;
- :class:`NovelDBonus`: the episodic count's growth from one observation to the next (NovelD).

A bonus is given for the observation an action led to (the next observation). RND and the count are
non-episodic: at an episode's end the bonus is the novelty of the next episode's first observation. Where
layouts are drawn anew each episode (most of MiniGrid), many egocentric views stay rare, so a non-episodic
count pays for staying alive; the episodic restriction pays only for what is new in the episode.

BaseAlgo takes one as ``exploration_bonus`` (with ``exploration_coef``): after each rollout it adds
``exploration_coef * intrinsic_rewards(next observations)`` to the rewards before GAE, then calls ``update`` on
the same observations. :func:`make_exploration_bonus` builds one by name (``rnd``, ``count``, ``episodic``,
``noveld``, ``both``).
"""

from __future__ import annotations

import torch
from torch import nn

from torch_rl.dictlist import DictList
from torch_rl.normalization import RunningMeanStd


def observation_features(obs: torch.Tensor | DictList) -> torch.Tensor:
    """The rows of a batch of model inputs as flat float vectors: a tensor as it is, a DictList's ``image``
    (or else its tensors side by side; token ids such as a mission's ``text`` are left out)."""
    if isinstance(obs, DictList):
        keys = ["image"] if "image" in obs.keys() else [k for k in obs.keys() if k != "text"]
        parts = [getattr(obs, key).reshape(len(obs), -1) for key in keys]
        return torch.cat(parts, 1).float()
    return obs.reshape(obs.shape[0], -1).float()


class ExplorationBonus(nn.Module):
    """An intrinsic reward per observation; ``update`` learns from the observations a rollout visited."""

    def intrinsic_rewards(self, obs: torch.Tensor | DictList, done: torch.Tensor | None = None) -> torch.Tensor:
        """The bonus of each row of ``obs``: a rollout's next observations, time-major (row ``t * N + i`` is
        env i's after step t). ``done`` (T, N) marks the steps that ended an episode, whose next observation is
        the next episode's first; only episodic bonuses need it."""
        raise NotImplementedError

    def update(self, obs: torch.Tensor | DictList) -> dict[str, float]:
        return {}


class RNDBonus(ExplorationBonus):
    """Random network distillation. Inputs are normalised by running statistics (clipped to ±5), and the
    bonus is divided by the running std of the bonuses seen, so that its scale does not drift as the
    predictor learns.

    ``centered``: subtract the batch's mean error, so that the bonus says which observations of a rollout are
    newer than the others and sums to 0 over it. The normalised error alone stays near its mean/std ratio however
    well the predictor has learnt, a reward for merely staying alive that teaches the agent to avoid a goal that
    ends the episode (see tests/test_exploration_learning.py). make_exploration_bonus centres it.
    """

    def __init__(
        self, input_size: int, hidden_size: int = 128, output_size: int = 64, lr: float = 1e-4, centered: bool = False
    ):
        super().__init__()
        self.centered = centered

        def mlp():
            return nn.Sequential(
                nn.Linear(input_size, hidden_size),
                nn.ReLU(),
                nn.Linear(hidden_size, hidden_size),
                nn.ReLU(),
                nn.Linear(hidden_size, output_size),
            )

        self.target, self.predictor = mlp(), mlp()
        self.target.requires_grad_(False)  # a fixed random function of the observation
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=lr)
        self.input_stats = RunningMeanStd((input_size,))
        self.bonus_stats = RunningMeanStd(())

    def _inputs(self, obs):
        x = observation_features(obs)
        mean = self.input_stats.mean.to(x.device, x.dtype)
        std = self.input_stats.var.sqrt().to(x.device, x.dtype)
        return ((x - mean) / (std + 1e-8)).clamp(-5, 5)

    def _errors(self, x):
        return (self.predictor(x) - self.target(x)).pow(2).mean(1)

    def intrinsic_rewards(self, obs, done=None):
        with torch.no_grad():
            errors = self._errors(self._inputs(obs))
        self.bonus_stats.update(errors)
        if self.centered:
            errors = errors - errors.mean()
        return errors / (self.bonus_stats.var.sqrt().to(errors) + 1e-8)

    def update(self, obs, epochs: int = 1, batch_size: int = 256):
        self.input_stats.update(observation_features(obs))
        x = self._inputs(obs)
        total = 0.0
        for _ in range(epochs):
            for rows in torch.randperm(len(x), device=x.device).split(batch_size):
                loss = self._errors(x[rows]).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(rows)
        return {"rnd_loss": total / (epochs * len(x))}

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        state["optimizer"] = self.optimizer.state_dict()
        state["input_stats"] = self.input_stats.state_dict()
        state["bonus_stats"] = self.bonus_stats.state_dict()
        return state

    def load_state_dict(self, state, strict: bool = True):
        state = dict(state)
        self.optimizer.load_state_dict(state.pop("optimizer"))
        self.input_stats.load_state_dict(state.pop("input_stats"))
        self.bonus_stats.load_state_dict(state.pop("bonus_stats"))
        return super().load_state_dict(state, strict)


def hash_weights(input_size: int, seed: int = 0) -> torch.Tensor:
    """Random odd int64 weights for :func:`hash_rows` (odd: every feature changes the hash)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-(2**62), 2**62, (input_size,), generator=generator, dtype=torch.int64) | 1


def hash_rows(obs: torch.Tensor | DictList, weights: torch.Tensor) -> torch.Tensor:
    """A 64-bit hash of each row's rounded features (integer overflow wraps around in torch's int64 arithmetic,
    which is what a hash wants)."""
    return (observation_features(obs).round().to(torch.int64) * weights).sum(1)


def add_counts(
    keys: torch.Tensor, counts: torch.Tensor, new_keys: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Counts ``new_keys`` into a table of sorted ``keys`` and their ``counts``. Returns the new table and, per
    new key, the position of its entry. The table is a pair of sorted tensors, so counting stays on the device.
    (Python dicts would need the keys on the host at every rollout.) The batch's keys are found by binary search
    and the unseen ones inserted in one pass: re-sorting the whole table at every rollout cost more than the
    rollout itself once it held millions of views."""
    unique, inverse, batch_counts = torch.unique(new_keys, return_inverse=True, return_counts=True)
    at = torch.searchsorted(keys, unique)  # where each key is, or would be inserted
    seen = keys[at.clamp(max=len(keys) - 1)] == unique if len(keys) else torch.zeros_like(unique, dtype=torch.bool)
    unseen = ~seen
    # in the merged table, the keys before each position move up by the unseen keys inserted before them
    inserted_before = torch.cumsum(unseen, 0) - unseen.long()
    position = at + inserted_before
    is_inserted = torch.zeros(len(keys) + int(unseen.sum()), dtype=torch.bool, device=keys.device)
    is_inserted[position[unseen]] = True
    merged_keys = torch.empty(len(is_inserted), dtype=keys.dtype, device=keys.device)
    merged_counts = torch.empty(len(is_inserted), dtype=counts.dtype, device=counts.device)
    merged_keys[is_inserted], merged_keys[~is_inserted] = unique[unseen], keys
    merged_counts[is_inserted], merged_counts[~is_inserted] = batch_counts[unseen], counts
    merged_counts[position[seen]] += batch_counts[seen]
    return merged_keys, merged_counts, position[inverse]


class CountBonus(ExplorationBonus):
    """``1 / sqrt(n)``, ``n`` the times the exact observation was seen, counting this batch. Observations are
    told apart by a 64-bit hash of their rounded features."""

    def __init__(self, input_size: int, seed: int = 0):
        super().__init__()
        self.register_buffer("weights", hash_weights(input_size, seed))
        self.register_buffer("hashes", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("counts", torch.zeros(0, dtype=torch.int64))

    def intrinsic_rewards(self, obs, done=None):
        return self.bonus_of_hashes(hash_rows(obs, self.weights))

    def bonus_of_hashes(self, hashes: torch.Tensor) -> torch.Tensor:
        self.hashes, self.counts, entry = add_counts(self.hashes, self.counts, hashes)
        return self.counts[entry].float().rsqrt()

    def distinct_observations(self) -> int:
        return len(self.hashes)

    def load_state_dict(self, state, strict: bool = True):
        # The table grows as observations are seen: take the saved table's size before loading it.
        for name in ("hashes", "counts"):
            if isinstance(state.get(name), torch.Tensor):
                setattr(self, name, torch.zeros_like(state[name], device=self.weights.device))
        return super().load_state_dict(state, strict)


class EpisodicCountBonus(CountBonus):
    """The count bonus (``1 / sqrt(n)``, ``n`` the visits ever), paid on an observation's first visit in the
    current episode only, and not at the step that ends an episode (its next observation is the next episode's
    first: a bonus there would pay for ending episodes). Needs ``done``.

    The episodic restriction is NovelD's (Zhang et al. 2021). A plain count keeps paying ``1 / sqrt(n)`` for views
    seen again and again; where layouts are drawn anew each episode most views stay rare, and that pays for
    staying alive and for shuffling objects about rather than for reaching what is new in the episode.

    The episodic table holds each observation seen in the envs' current episodes once, keyed by its hash plus a
    multiple of a per-episode id, so that one table tells every env's episodes apart; the entries of ended episodes
    are dropped after each rollout. A run that resumes starts new episodes, so only the count table is saved."""

    def __init__(self, input_size: int, seed: int = 0):
        super().__init__(input_size, seed)
        self.episode_salt = int(hash_weights(1, seed + 1))
        # each env's current episode id, and the episodic table: keys and their episode ids
        for name in ("episodes", "episode_keys", "key_episodes"):
            self.register_buffer(name, torch.zeros(0, dtype=torch.int64), persistent=False)
        self.next_episode = 0

    def intrinsic_rewards(self, obs, done=None):
        if done is None:
            raise ValueError("the episodic count needs done, the (T, N) steps that ended an episode")
        hashes = hash_rows(obs, self.weights)
        bonus = self.novelty(hashes, done) * self.first_visits(hashes, done)
        return bonus.masked_fill(done.reshape(-1), 0.0)

    def novelty(self, hashes, done):
        """The bonus of each row before the first-visit restriction: here the count bonus of its observation."""
        return self.bonus_of_hashes(hashes)

    def first_visits(self, hashes, done):
        """Whether each row is its observation's first visit in its episode (rows are in time order)."""
        num_envs = done.shape[1]
        if len(self.episodes) != num_envs:
            self.episodes = torch.arange(num_envs, device=done.device)
            self.next_episode = num_envs
            empty = torch.zeros(0, dtype=torch.int64, device=done.device)
            self.episode_keys, self.key_episodes = empty, empty
        # the episode of each next observation: env i's k-th episode begun in this rollout gets a new id
        begun = done.long().cumsum(0)
        new_ids = self.next_episode + (begun - 1) * num_envs + torch.arange(num_envs, device=done.device)
        episode = torch.where(begun > 0, new_ids, self.episodes)
        self.next_episode += int(begun[-1].max()) * num_envs
        self.episodes = episode[-1]

        episode = episode.reshape(-1)
        keys = hashes + episode * self.episode_salt
        # first in the rollout: the earliest row of its key; first in the episode: not in the table either
        rows = torch.arange(len(keys), device=keys.device)
        unique, inverse = torch.unique(keys, return_inverse=True)
        earliest = torch.full_like(unique, len(keys)).scatter_reduce_(0, inverse, rows, "amin")
        first = (earliest[inverse] == rows) & ~torch.isin(keys, self.episode_keys)

        keys, key_episodes = torch.cat([self.episode_keys, keys[first]]), torch.cat([self.key_episodes, episode[first]])
        live = torch.isin(key_episodes, self.episodes)  # drop the ended episodes' entries
        self.episode_keys, self.key_episodes = keys[live], key_episodes[live]
        return first


class NovelDBonus(EpisodicCountBonus):
    """NovelD (Zhang et al. 2021) with counts for novelty: ``max(c(s') - alpha * c(s), 0)`` on the first visit of
    ``s'`` in the episode, where ``c = 1 / sqrt(n)`` and the action led from ``s`` to ``s'``.

    It pays for crossing from the familiar into the new, not for novelty itself. Where the agent can move objects
    about (a ball, a key), every new place of an object makes a new view; the episodic count keeps paying for
    that shuffling, whose views are all about as new as one another, while a door opened onto an unseen room
    still pays in full. ``alpha`` is the paper's 0.5.

    The observation before a rollout's first step is the previous rollout's last next observation; its hash is kept
    per env (not saved: a run that resumes pays its first step's novelty in full)."""

    def __init__(self, input_size: int, seed: int = 0, alpha: float = 0.5):
        super().__init__(input_size, seed)
        self.alpha = alpha
        self.register_buffer("last_hashes", torch.zeros(0, dtype=torch.int64), persistent=False)

    def novelty(self, hashes, done):
        num_envs = done.shape[1]
        following = self.bonus_of_hashes(hashes).reshape(-1, num_envs)
        if len(self.last_hashes) == num_envs:
            first = self.counts[torch.searchsorted(self.hashes, self.last_hashes)].float().rsqrt()
        else:
            first = torch.zeros(num_envs, device=hashes.device)
        # the observation each action was taken in: the one before it in time (after an episode's end, the
        # next episode's first, which is what the rollout's next observations hold there)
        current = torch.cat([first[None], following[:-1]])
        self.last_hashes = hashes.reshape(-1, num_envs)[-1]
        return (following - self.alpha * current).clamp(min=0).reshape(-1)


class SumOfBonuses(ExplorationBonus):
    """Several bonuses added together (e.g. RND and counts), each learning on its own."""

    def __init__(self, bonuses: dict[str, ExplorationBonus]):
        super().__init__()
        self.bonuses = nn.ModuleDict(bonuses)

    def intrinsic_rewards(self, obs, done=None):
        rewards = [bonus.intrinsic_rewards(obs, done) for bonus in self.bonuses.values()]
        return torch.stack(rewards).sum(0)

    def update(self, obs):
        logs = {}
        for bonus in self.bonuses.values():
            logs |= bonus.update(obs)
        return logs

    # Each part's own state_dict (RND's holds its optimizer and statistics, which a module's children lose).
    def state_dict(self, *args, **kwargs):
        return {name: bonus.state_dict() for name, bonus in self.bonuses.items()}

    def load_state_dict(self, state, strict: bool = True):
        if set(state) != set(self.bonuses):
            raise ValueError(f"the saved bonus has parts {sorted(state)}, this one {sorted(self.bonuses)}")
        for name, bonus in self.bonuses.items():
            bonus.load_state_dict(state[name])


EXPLORATION_BONUSES = ("rnd", "count", "episodic", "noveld", "both")


def make_exploration_bonus(kind: str, example_obs: torch.Tensor | DictList, seed: int = 0) -> ExplorationBonus:
    """The bonus named ``kind`` (one of EXPLORATION_BONUSES) for model inputs like ``example_obs`` (a batch)."""
    input_size = observation_features(example_obs).shape[1]
    if kind == "rnd":
        return RNDBonus(input_size, centered=True)
    if kind == "count":
        return CountBonus(input_size, seed)
    if kind == "episodic":
        return EpisodicCountBonus(input_size, seed)
    if kind == "noveld":
        return NovelDBonus(input_size, seed)
    if kind == "both":
        return SumOfBonuses({"rnd": RNDBonus(input_size, centered=True), "count": CountBonus(input_size, seed)})
    raise ValueError(f"unknown exploration bonus {kind!r}: one of {', '.join(EXPLORATION_BONUSES)}")
