"""DictList: a dictionary of equally long sequences that is itself indexable like one sequence."""

from typing import Any

import numpy as np


class DictList(dict):
    """A dict of lists, arrays or tensors of the same length, indexed together.

    >>> d = DictList({"a": [[1, 2], [3, 4]], "b": [[5], [6]]})
    >>> d.a
    [[1, 2], [3, 4]]
    >>> d[0]
    {'a': [1, 2], 'b': [5]}
    >>> len(d)
    2

    A string key reads or writes one entry (``d["a"]``, ``d.a``); any other index (int, slice, index tensor or
    array) applies to every value and returns a new DictList. Nested plain dicts become DictLists.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, value in self.items():
            if isinstance(value, dict) and not isinstance(value, DictList):
                dict.__setitem__(self, key, DictList(value))

    def __getattr__(self, key: str) -> Any:
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            raise AttributeError(f"DictList has no key {key!r} (keys: {list(self.keys())})") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        del self[key]

    def __len__(self) -> int:
        lengths = {}
        for key, value in self.items():
            try:
                lengths[key] = len(value)
            except TypeError:
                raise TypeError(f"DictList value {key!r} of type {type(value).__name__} has no length") from None
        if len(set(lengths.values())) > 1:
            raise ValueError(f"DictList values have different lengths: {lengths}")
        return next(iter(lengths.values()), 0)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str):
            return dict.__getitem__(self, index)
        len(self)  # checks that every value has a length and that the lengths agree
        return DictList({key: _index(value, index) for key, value in self.items()})

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, str):
            if isinstance(value, dict) and not isinstance(value, DictList):
                value = DictList(value)
            dict.__setitem__(self, index, value)
            return
        if not isinstance(value, dict):
            raise TypeError(f"DictList[{index!r}] = ... needs a dict with the same keys, got {type(value).__name__}")
        if set(value.keys()) != set(self.keys()):
            raise KeyError(f"DictList[{index!r}] = ... needs keys {sorted(self.keys())}, got {sorted(value.keys())}")
        for key, item in value.items():
            dict.__getitem__(self, key)[index] = item

    def __repr__(self):
        return f"DictList({dict.__repr__(self)})"

    def __getstate__(self):
        return dict(self)

    def __setstate__(self, state):
        self.update(state)

    def __reduce__(self):
        return (DictList, (dict(self),))


def _index(value, index):
    """``value[index]``, also for a list (or tuple) value and an index array or tensor (of ints, or a bool mask)."""
    if isinstance(value, np.ndarray) and hasattr(index, "cpu") and hasattr(index, "numpy"):
        index = index.cpu().numpy()  # numpy reads a one-element tensor as a scalar index
    if isinstance(value, (list, tuple)) and not isinstance(index, (int, slice)) and hasattr(index, "tolist"):
        positions = index.tolist()
        if not isinstance(positions, list):  # a 0-d index
            return value[positions]
        if positions and all(isinstance(p, bool) for p in positions):
            if len(positions) != len(value):
                raise IndexError(f"a boolean index of length {len(positions)} for a value of length {len(value)}")
            return type(value)(item for item, keep in zip(value, positions, strict=True) if keep)
        return type(value)(value[p] for p in positions)
    return value[index]
