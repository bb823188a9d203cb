"""Turning observations into model inputs: images and mission strings for MiniGrid, flat vectors otherwise."""

import re

import gymnasium as gym
import torch
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

import torch_rl
from torch_rl.normalization import ObservationNormalizer
from utils.errors import UsageError


class Vocabulary:
    """Maps words of the mission strings to token ids (1.., 0 is padding); saved with the model."""

    def __init__(self, max_size=100):
        self.max_size = max_size
        self.vocab = {}
        self._tokens = {}  # mission string -> token tensor, so that each mission is tokenised once

    def load_vocab(self, vocab):
        if any(not 1 <= i < self.max_size for i in vocab.values()):
            raise ValueError(f"its token ids must lie in 1..{self.max_size - 1}")
        self.vocab = dict(vocab)
        self._tokens = {}

    def __getitem__(self, word):
        if word not in self.vocab:
            if len(self.vocab) >= self.max_size - 1:
                raise UsageError(f"the mission vocabulary is full ({self.max_size - 1} words); raise max_size")
            self.vocab[word] = len(self.vocab) + 1
        return self.vocab[word]

    def tokens(self, mission):
        tokens = self._tokens.get(mission)
        if tokens is None:
            words = re.findall("([a-z]+)", mission.lower())
            tokens = self._tokens[mission] = torch.tensor([self[w] for w in words] or [0], dtype=torch.long)
        return tokens


IMAGE_ENCODINGS = ("raw", "onehot")
# scripts.train --obs: what a MiniGrid agent sees, each a Minigrid wrapper (utils.env.OBS_WRAPPERS) but "partial",
# the env's own 7x7 view. The RGB ones are pixels, which --image-encoding onehot cannot encode.
OBS_VARIANTS = ("partial", "full", "rgb", "rgb-full")
RGB_OBS = ("rgb", "rgb-full")
# MiniGrid encodes a cell as (object type, colour, state) indices; one-hot, that is 11 + 6 + 3 channels.
ONEHOT_SIZES = (len(OBJECT_TO_IDX), len(COLOR_TO_IDX), len(STATE_TO_IDX))


def onehot_image(image):
    """(..., 3) MiniGrid cell codes -> (..., 20) floats, one-hot per code. Why: as raw numbers a key (5) and a
    ball (6) differ by 1 in one channel, so a linear layer sees them nearly alike; a model that must combine
    what it remembers with what it sees (key-or-ball XOR which side) then learns far more slowly."""
    image = torch.as_tensor(image).long()
    return torch.cat(
        [torch.nn.functional.one_hot(image[..., i], n) for i, n in enumerate(ONEHOT_SIZES)], dim=-1
    ).float()


class ObssPreprocessor:
    """Turns observations into the model's input: ``preprocess_obss(obss, device=None)`` -> DictList.

    ``obss`` is a batch (a dict of stacked arrays, as the env batches give) or a list of per-env observations.
    ``state_dict()`` holds what must be saved with the model (a vocabulary, normalisation statistics) and
    ``load_state_dict()`` restores it; ``eval()`` freezes what training would update.
    """

    accepts_stacked_obs = True  # the algorithms may hand a stacked batch instead of a list

    def __call__(self, obss, device=None):
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def eval(self):
        return self


class MiniGridPreprocessor(ObssPreprocessor):
    """MiniGrid dict observations -> DictList ``image`` (float, N x 7 x 7 x C) and, with ``tokenise``, ``text``
    (token ids of the mission, N x L, by ``vocab``: its state is saved with the model).

    Observations of the batched env also hold ``mission_tokens``, the missions as ids of its fixed vocabulary
    (``torch_rl.envs.minigrid.missions``): they are mapped to ``vocab``'s ids with one lookup (every word of that
    vocabulary is entered into ``vocab`` first, so the saved vocabulary tokenises the real env's mission strings
    to the same ids) and trimmed to the batch's longest mission, exactly as the strings would be tokenised."""

    def __init__(self, onehot=False, tokenise=False):
        self.onehot = onehot
        self.tokenise = tokenise  # a model without text skips the work
        self.vocab = Vocabulary()
        self._token_map = None  # batched vocabulary id -> vocab id, on the device of the last batch

    def __call__(self, obss, device=None):
        if isinstance(obss, (list, tuple)):
            obss = torch_rl.batching.stack_obs(list(obss))
        image = torch.as_tensor(obss["image"], device=device)
        image = onehot_image(image) if self.onehot else image.float()
        result = torch_rl.DictList(image=image)
        if self.tokenise and isinstance(obss, dict) and torch.is_tensor(obss.get("mission_tokens")):
            result.text = self._map_tokens(obss["mission_tokens"], device)
        elif self.tokenise:
            missions = obss["mission"]
            if len(set(missions)) == 1:  # one mission for all envs (common): tokenise once
                result.text = self.vocab.tokens(missions[0]).to(device).expand(len(missions), -1)
            else:
                tokens = [self.vocab.tokens(m) for m in missions]
                result.text = torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True).to(device)
        return result

    def _map_tokens(self, tokens, device):
        tokens = tokens.to(device)
        if self._token_map is None or self._token_map.device != tokens.device:
            from torch_rl.envs.minigrid.missions import MISSION_WORDS

            ids = [0] + [self.vocab[word] for word in MISSION_WORDS]
            self._token_map = torch.tensor(ids, dtype=torch.long, device=tokens.device)
        length = max(int((tokens != 0).sum(1).max()), 1) if tokens.shape[0] else 1
        return self._token_map[tokens[:, :length]]

    def state_dict(self) -> dict:
        return {"vocab": dict(self.vocab.vocab)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("vocab") is not None:
            self.vocab.load_vocab(state["vocab"])
            self._token_map = None


class FlatPreprocessor(ObssPreprocessor):
    """Flat Box observations -> DictList ``flat``; with ``normalize`` standardised by running statistics
    (``normalizer``, saved with the model)."""

    def __init__(self, shape, normalize=False):
        self.normalizer = ObservationNormalizer(shape) if normalize else None

    def __call__(self, obss, device=None):
        flat = torch_rl.default_preprocess_obss(obss, device=device)
        return torch_rl.DictList(flat=self.normalizer(flat) if self.normalizer is not None else flat)

    def state_dict(self) -> dict:
        return {} if self.normalizer is None else {"obs_normalizer": self.normalizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("obs_normalizer")
        if self.normalizer is None or saved is None:
            return
        if saved["mean"].shape != self.normalizer.mean.shape or saved["var"].shape != self.normalizer.var.shape:
            shapes = tuple(saved["mean"].shape), tuple(self.normalizer.mean.shape)
            raise ValueError(f"its statistics have shape {shapes[0]}, the observations {shapes[1]}")
        self.normalizer.load_state_dict(saved)

    def eval(self):
        if self.normalizer is not None:  # evaluation does not move the training statistics
            self.normalizer.training = False
        return self


def get_obss_preprocessor(obs_space, normalize=False, use_text=True, image_encoding="raw"):
    """(model obs space, preprocess_obss) for an env's observation space.

    MiniGrid dict observations give ``{"image": (7, 7, 3), "text": 100}`` and a MiniGridPreprocessor (missions
    are tokenised only with ``use_text``; with ``image_encoding="onehot"`` each cell's three codes are one-hot
    encoded, ``onehot_image``). Flat Box observations give ``{"flat": size}`` and a FlatPreprocessor, which
    with ``normalize`` standardises them by running statistics.
    """
    if isinstance(obs_space, gym.spaces.Dict) and "image" in obs_space.spaces:
        if image_encoding not in IMAGE_ENCODINGS:
            raise ValueError(f"image_encoding must be one of {IMAGE_ENCODINGS}, got {image_encoding!r}")
        onehot = image_encoding == "onehot"
        preprocess_obss = MiniGridPreprocessor(onehot, tokenise=use_text and "mission" in obs_space.spaces)
        image_shape = obs_space.spaces["image"].shape
        model_space = {"image": (*image_shape[:-1], sum(ONEHOT_SIZES)) if onehot else image_shape}
        if preprocess_obss.tokenise:
            model_space["text"] = preprocess_obss.vocab.max_size
        return model_space, preprocess_obss

    if isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1:
        return {"flat": obs_space.shape[0]}, FlatPreprocessor(obs_space.shape, normalize)

    raise UsageError(
        f"the starter files handle MiniGrid dict observations and flat Box observations, not {obs_space}; "
        "write a preprocess_obss and a model for it (see model.py and utils/format.py)"
    )


def has_mission(obs_space):
    return isinstance(obs_space, gym.spaces.Dict) and "mission" in obs_space.spaces
