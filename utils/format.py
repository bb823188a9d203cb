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


def get_obss_preprocessor(obs_space, normalize=False, use_text=True, image_encoding="raw"):
    """(model obs space, preprocess_obss) for an env's observation space.

    MiniGrid dict observations give ``{"image": (7, 7, 3), "text": 100}`` and a preprocessor producing a
    DictList with ``image`` (float, N x 7 x 7 x 3) and ``text`` (token ids, N x L); its ``vocab`` attribute
    is the Vocabulary to save with the model (missions are tokenised only with ``use_text``); with
    ``image_encoding="onehot"`` each cell's three codes are one-hot encoded (``onehot_image``). Flat Box
    observations give ``{"flat": size}``; with ``normalize`` they are standardised by running statistics (the
    ``normalizer`` attribute, saved with the model).
    """
    if isinstance(obs_space, gym.spaces.Dict) and "image" in obs_space.spaces:
        if image_encoding not in IMAGE_ENCODINGS:
            raise ValueError(f"image_encoding must be one of {IMAGE_ENCODINGS}, got {image_encoding!r}")
        onehot = image_encoding == "onehot"
        vocab = Vocabulary()
        tokenise = use_text and "mission" in obs_space.spaces  # a model without text skips the work

        def preprocess_obss(obss, device=None):
            if isinstance(obss, (list, tuple)):
                obss = torch_rl.batching.stack_obs(list(obss))
            image = torch.as_tensor(obss["image"], device=device)
            image = onehot_image(image) if onehot else image.float()
            result = torch_rl.DictList(image=image)
            if tokenise:
                missions = obss["mission"]
                if len(set(missions)) == 1:  # one mission for all envs (common): tokenise once
                    result.text = vocab.tokens(missions[0]).to(device).expand(len(missions), -1)
                else:
                    tokens = [vocab.tokens(m) for m in missions]
                    result.text = torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True).to(device)
            return result

        preprocess_obss.vocab = vocab
        preprocess_obss.accepts_stacked_obs = True  # it also takes the envs' stacked batch (faster than a list)
        image_shape = obs_space.spaces["image"].shape
        model_space = {"image": (*image_shape[:-1], sum(ONEHOT_SIZES)) if onehot else image_shape}
        if tokenise:
            model_space["text"] = vocab.max_size
        return model_space, preprocess_obss

    if isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1:
        normalizer = ObservationNormalizer(obs_space.shape) if normalize else None

        def preprocess_obss(obss, device=None):
            flat = torch_rl.default_preprocess_obss(obss, device=device)
            return torch_rl.DictList(flat=normalizer(flat) if normalizer is not None else flat)

        preprocess_obss.normalizer = normalizer
        preprocess_obss.accepts_stacked_obs = True  # it also takes the envs' stacked batch (faster than a list)
        return {"flat": obs_space.shape[0]}, preprocess_obss

    raise UsageError(
        f"the starter files handle MiniGrid dict observations and flat Box observations, not {obs_space}; "
        "write a preprocess_obss and a model for it (see model.py and utils/format.py)"
    )


def has_mission(obs_space):
    return isinstance(obs_space, gym.spaces.Dict) and "mission" in obs_space.spaces
