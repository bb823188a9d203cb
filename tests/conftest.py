"""Registers the test envs (tests/envs.py) under TorchRLTest-* ids, once, before any test module is imported.

A train subprocess finds them by the ``module:id`` form of an env id, which imports this module first:
``--env tests.conftest:TorchRLTest-Raising-v0``.
"""

import gymnasium as gym
import pytest

# Each train run of test_reliability that trains 2 updates (64 frames) saves them, then meets the fault in update 3.
TEST_ENVS = {
    "TorchRLTest-Raising-v0": ("RaisingStepEnv", {"after": 40}),
    "TorchRLTest-NaNReward-v0": ("NaNRewardEnv", {"after": 40}),
    "TorchRLTest-NaNObservation-v0": ("NaNObservationEnv", {"after": 40}),
    "TorchRLTest-Hanging-v0": ("HangingEnv", {"after": 40}),
    "TorchRLTest-NoRenderMode-v0": ("NoRenderModeEnv", {}),
    "TorchRLTest-Slow-v0": ("SlowEnv", {}),
    "TorchRLTest-NaNRewardAtOnce-v0": ("NaNRewardAtOnceEnv", {}),
    "TorchRLTest-ShapeChanging-v0": ("ShapeChangingEnv", {}),
    "TorchRLTest-StringObservation-v0": ("StringObservationEnv", {}),
}
for _id, (_class, _kwargs) in TEST_ENVS.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point=f"tests.envs:{_class}", kwargs=_kwargs)


@pytest.fixture(autouse=True)
def _layout_cache_per_test(tmp_path_factory, monkeypatch):
    """Each test's layout banks (and the scripts it runs) use a fresh layout cache folder of their own: a cache in
    the user's home or one left by another test would change how many layouts a bank starts from."""
    monkeypatch.setenv("TORCH_RL_CACHE", str(tmp_path_factory.mktemp("layout-cache")))
