"""A trained model, ready to act: what evaluate and visualize use."""

import torch

from model import ACModel
from utils.errors import UsageError
from utils.format import get_obss_preprocessor
from utils.storage import get_status


class Agent:
    """Loads ``model_dir``'s model and picks actions for a batch of observations, keeping the memory.

    ``status`` is the already loaded ``status.pt`` (``utils.storage.get_status``), if the caller has it.
    ``argmax``: take the most likely action (the Gaussian's mean for Box actions) instead of sampling.
    ``num_envs``: how many envs act together; a recurrent model keeps one memory per env.
    """

    def __init__(self, obs_space, action_space, model_dir, device="cpu", argmax=False, num_envs=1, status=None):
        if status is None:
            status = get_status(model_dir)
        config = status.get("config", {})
        self.env_id = config.get("env", "?")
        mismatch = (
            f"the model in {model_dir} was made for {self.env_id}, whose observations or actions differ "
            f"from this env's; evaluate it on {self.env_id} or an env of the same kind"
        )
        obs_space_for_model, self.preprocess_obss = get_obss_preprocessor(
            obs_space,
            "obs_normalizer" in status,
            use_text=config.get("use_text", False),
            image_encoding=config.get("image_encoding", "raw"),
        )  # older checkpoints have no image_encoding
        if "obs_normalizer" in status:  # frozen: evaluation does not move the training statistics
            self.preprocess_obss.normalizer.load_state_dict(status["obs_normalizer"])
            self.preprocess_obss.normalizer.training = False
        try:
            self.model = ACModel(
                obs_space_for_model, action_space, config.get("use_memory", False), config.get("use_text", False)
            )
        except (ValueError, TypeError, AttributeError):  # e.g. a --text model on an env without missions
            raise UsageError(mismatch) from None
        try:
            self.model.load_state_dict(status["model_state"])
        except RuntimeError:
            raise UsageError(mismatch) from None
        if hasattr(self.preprocess_obss, "vocab"):
            self.preprocess_obss.vocab.load_vocab(status.get("vocab", {}))
        self.device = torch.device(device)
        self.model.to(self.device).eval()
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

    def get_action(self, obs):
        """The action for one env's observation (an agent made with ``num_envs=1``), as a tensor row."""
        return self.get_actions([obs])[0]

    def analyze_feedbacks(self, dones):
        """Forgets the memory of envs whose episode ended (``dones``: one bool per env, terminated or truncated)."""
        if self.model.recurrent:
            mask = 1 - torch.as_tensor(dones, dtype=torch.float32, device=self.device).reshape(-1, 1)
            self.memories *= mask

    def analyze_feedback(self, done):
        self.analyze_feedbacks([done])
