"""Measures how much of a training run's wall time goes to collecting experience."""

import time

import torch


class CollectionTimer:
    """Wraps ``algo.collect_experiences`` so that ``seconds`` adds up the time spent in it (with the device
    synchronised around each call, so that queued GPU work is counted where it was launched)."""

    def __init__(self, algo, device):
        self.seconds = 0.0
        self._collect = algo.collect_experiences
        self._cuda = torch.device(device).type == "cuda"
        algo.collect_experiences = self._timed_collect

    def _sync(self):
        if self._cuda:
            torch.cuda.synchronize()

    def _timed_collect(self):
        self._sync()
        start = time.perf_counter()
        result = self._collect()
        self._sync()
        self.seconds += time.perf_counter() - start
        return result
