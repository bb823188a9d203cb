"""A trained model, ready to act: what evaluate and visualize use."""

import torch

from model import ACModel
from utils import checkpoint as checkpoints
from utils.errors import UsageError
from utils.format import get_obss_preprocessor


def add_agent_arguments(parser):
    """The flags that choose how a trained model acts, shared by scripts.evaluate and scripts.visualize."""
    parser.add_argument(
        "--best",
        action="store_true",
        help="use the model's best checkpoint (status_best.pt, kept when training evaluates with --eval-interval) "
        "instead of the last one",
    )
    parser.add_argument(
        "--argmax",
        action="store_true",
        help="act with the most likely action (the mean for continuous actions) instead of sampling",
    )


class Policy:
    """Picks actions with ``model`` for a batch of observations (preprocessed by ``preprocess_obss``), keeping a
    recurrent model's memory per env: what utils.evaluation.run_episodes acts with.

    ``argmax``: take the most likely action (the Gaussian's mean for Box actions) instead of sampling.
    ``num_envs``: how many envs act together; a recurrent model keeps one memory per env.
    """

    def __init__(self, model, preprocess_obss, device="cpu", argmax=False, num_envs=1):
        self.model = model
        self.preprocess_obss = preprocess_obss
        self.device = torch.device(device)
        self.argmax = argmax
        self.num_envs = num_envs
        if self.model.recurrent:
            self.memories = torch.zeros(num_envs, self.model.memory_size, device=self.device)

    def get_actions(self, obss):
        """Actions (a tensor, one row per env) for a batch of observations (or a list of per-env ones)."""
        preprocessed = self.preprocess_obss(obss, device=self.device)
        with torch.no_grad():
            if self.model.recurrent:
                dist, _, self.memories = self.model(preprocessed, self.memories)
            else:
                dist, _ = self.model(preprocessed)
        if self.argmax:
            actions = dist.mean if self.model.continuous else dist.probs.argmax(dim=1)
        else:
            actions = dist.sample()
        return actions

    def analyze_feedbacks(self, dones):
        """Forgets the memory of envs whose episode ended (``dones``: one bool per env, terminated or truncated)."""
        if self.model.recurrent:
            mask = 1 - torch.as_tensor(dones, dtype=torch.float32, device=self.device).reshape(-1, 1)
            self.memories *= mask

    def analyze_feedback(self, done):
        self.analyze_feedbacks([done])


class Agent(Policy):
    """Loads ``model_dir``'s model and picks actions for a batch of observations, keeping the memory.

    ``checkpoint`` is the already loaded checkpoint (``utils.checkpoint.load``), if the caller has it.
    ``argmax``: take the most likely action (the Gaussian's mean for Box actions) instead of sampling.
    ``num_envs``: how many envs act together; a recurrent model keeps one memory per env.
    """

    def __init__(self, obs_space, action_space, model_dir, device="cpu", argmax=False, num_envs=1, checkpoint=None):
        if checkpoint is None:
            checkpoint = checkpoints.load(model_dir)
        config = checkpoint.architecture()
        self.env_id = config["env"]
        mismatch = (
            f"the model in {model_dir} was made for {self.env_id}, whose observations or actions differ "
            f"from this env's; evaluate it on {self.env_id} or an env of the same kind"
        )
        normalized = checkpoint.preprocessor_state.get("obs_normalizer") is not None
        obs_space_for_model, self.preprocess_obss = get_obss_preprocessor(
            obs_space, normalized, use_text=config["use_text"], image_encoding=config["image_encoding"]
        )
        try:
            self.model = ACModel(obs_space_for_model, action_space, config["use_memory"], config["use_text"])
        except (ValueError, TypeError, AttributeError):  # e.g. a --text model on an env without missions
            raise UsageError(mismatch) from None
        try:
            self.model.load_state_dict(checkpoint.model_state)
        except (RuntimeError, ValueError, KeyError, TypeError):
            raise UsageError(mismatch) from None
        for part, key in checkpoints.PREPROCESSOR_KEYS.items():
            try:
                self.preprocess_obss.load_state_dict({part: checkpoint.preprocessor_state.get(part)})
            except (RuntimeError, ValueError, KeyError, TypeError) as error:
                raise UsageError(
                    f"the saved {key} of the model in {model_dir} does not fit this env: {error}"
                ) from None
        self.preprocess_obss.eval()  # frozen: evaluation does not move the training statistics
        self.model.to(device).eval()
        super().__init__(self.model, self.preprocess_obss, device, argmax, num_envs)
