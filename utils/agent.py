"""A trained model, ready to act: what evaluate and visualize use."""
import torch

from model import ACModel
from utils.format import get_obss_preprocessor
from utils.storage import get_status
from utils.errors import UsageError


class Agent:
    """Loads ``model_dir``'s model and picks actions for a batch of observations, keeping the memory."""

    def __init__(self, obs_space, action_space, model_dir, device="cpu", argmax=False, num_envs=1):
        status = get_status(model_dir)
        config = status["config"]
        obs_space_for_model, self.preprocess_obss = get_obss_preprocessor(obs_space)
        self.model = ACModel(obs_space_for_model, action_space, config["use_memory"], config["use_text"])
        try:
            self.model.load_state_dict(status["model_state"])
        except RuntimeError:
            raise UsageError(f"the model in {model_dir} was made for {config['env']}, whose observations or actions "
                             "differ from this env's; evaluate it on that env") from None
        if hasattr(self.preprocess_obss, "vocab"):
            self.preprocess_obss.vocab.load_vocab(status.get("vocab", {}))
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.argmax = argmax
        self.env_id = config["env"]
        if self.model.recurrent:
            self.memories = torch.zeros(num_envs, self.model.memory_size, device=self.device)

    def get_actions(self, obss):
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
        """Forgets the memory of envs whose episode ended."""
        if self.model.recurrent:
            mask = 1 - torch.as_tensor(dones, dtype=torch.float32, device=self.device).unsqueeze(1)
            self.memories *= mask
