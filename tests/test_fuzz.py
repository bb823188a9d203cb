"""Property tests of DictList, torch_rl.batching.stack_obs and default_preprocess_obss on odd inputs.

With hypothesis installed, each property gets hypothesis-driven randomness (st.randoms: shrinkable, and the same
examples on every run); without it, the same properties run on a fixed set of seeded random.Random instances.
"""

import copy
import pickle
import random

import numpy as np
import pytest
import torch

from torch_rl import DictList, default_preprocess_obss
from torch_rl.batching import stack_obs

EXAMPLES = 60

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    def fuzz(test):
        # derandomize: CI sees the same examples on every run (a failure reproduces), and no example database
        return settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(rng=st.randoms(use_true_random=False))(test))
except ImportError:  # seeded random loops

    def fuzz(test):
        return pytest.mark.parametrize(
            "rng", [random.Random(seed) for seed in range(EXAMPLES)], ids=[f"seed{seed}" for seed in range(EXAMPLES)]
        )(test)


# ------------------------------------------------------------------------------------------------- helpers
def same(a, b):
    """Equal values of the same kind (recursively for dicts)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    numpy = (np.ndarray, np.generic)  # an array, or one of its items (a numpy scalar, as a 0-d array)
    if isinstance(a, numpy) or isinstance(b, numpy):
        if not (isinstance(a, numpy) and isinstance(b, numpy)):
            return False
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def random_value(rng, n, depth=0):
    """A value of length n: a list, a float/uint8 array, a tensor, or (not too deep) a dict of such values."""
    kinds = ["list", "array", "uint8", "tensor"] + (["dict"] if depth < 2 else [])
    kind = rng.choice(kinds)
    width = rng.choice([(), (2,), (1, 3)])
    if kind == "list":
        return [rng.randint(-9, 9) for _ in range(n)]
    if kind == "array":
        return np.array([rng.uniform(-1, 1) for _ in range(n * int(np.prod(width)))]).reshape(n, *width)
    if kind == "uint8":
        return np.array([rng.randrange(256) for _ in range(n * int(np.prod(width)))], np.uint8).reshape(n, *width)
    if kind == "tensor":
        return torch.tensor([rng.uniform(-1, 1) for _ in range(n * int(np.prod(width)))]).reshape(n, *width)
    return {key: random_value(rng, n, depth + 1) for key in rng.sample("pqr", rng.randint(1, 2))}


def random_values(rng, n=None):
    n = rng.randint(0, 6) if n is None else n
    return n, {key: random_value(rng, n) for key in rng.sample("abcd", rng.randint(1, 3))}


def apply(values, f):
    """``f`` applied to every leaf value (recursively through dicts)."""
    return {key: apply(value, f) if isinstance(value, dict) else f(value) for key, value in values.items()}


def random_row_like(rng, value):
    """A new row for ``value`` (one item of it)."""
    if isinstance(value, dict):
        return {key: random_row_like(rng, v) for key, v in value.items()}
    if isinstance(value, list):
        return rng.randint(100, 200)
    if isinstance(value, torch.Tensor):
        return torch.full(value.shape[1:], float(rng.randint(100, 200)))
    return np.full(value.shape[1:], rng.randint(100, 200), dtype=value.dtype)


def random_slice(rng, n):
    bound = lambda: rng.choice([None, rng.randint(-n - 2, n + 2)])  # noqa: E731
    return slice(bound(), bound(), rng.choice([None, 1, 2, 3, -1, -2]))


# ------------------------------------------------------------------------------------------------- DictList
@fuzz
def test_dictlist_length_rows_and_attributes_agree_with_its_values(rng):
    n, values = random_values(rng)
    d = DictList(values)
    assert len(d) == n
    for key, value in values.items():
        assert d[key] is getattr(d, key)
        if isinstance(value, dict):
            assert isinstance(d[key], DictList) and len(d[key]) == n
    for i in range(-n, n):
        row = d[i]
        assert isinstance(row, DictList)
        assert same(row, apply(values, lambda v, i=i: v[i]))
    if n > 0:
        with pytest.raises(IndexError):
            d[n]


@fuzz
def test_dictlist_slices_and_index_arrays_agree_with_its_values(rng):
    n, values = random_values(rng)
    d = DictList(values)
    s = random_slice(rng, n)
    try:
        expected = apply(values, lambda v: v[s])
    except ValueError:  # torch tensors refuse negative steps: so does the DictList
        with pytest.raises(ValueError):
            d[s]
    else:
        part = d[s]
        assert isinstance(part, DictList) and len(part) == len(range(n)[s])
        assert same(part, expected)

    positions = [rng.randrange(-n, n) for _ in range(rng.randint(0, 5))] if n else []
    mask = [rng.random() < 0.5 for _ in range(n)]
    for index, chosen in [
        (np.array(positions, dtype=np.int64), positions),
        (torch.tensor(positions, dtype=torch.long), positions),
        (torch.tensor(mask, dtype=torch.bool), [i for i in range(n) if mask[i]]),
    ]:
        part = d[index]
        assert len(part) == len(chosen)

        def expected(value, chosen=chosen):
            if isinstance(value, list):
                return [value[i] for i in chosen]
            if isinstance(value, torch.Tensor):
                return value[torch.tensor(chosen, dtype=torch.long)]
            return value[np.array(chosen, dtype=np.int64)]

        assert same(part, apply(values, expected))


@fuzz
def test_dictlist_setitem_round_trips(rng):
    n, values = random_values(rng, rng.randint(1, 6))
    expected = copy.deepcopy(values)
    d = DictList(values)
    i = rng.randrange(-n, n)
    row = random_row_like(rng, values)
    d[i] = row
    assert same(d[i], DictList(row) if isinstance(row, dict) else row)

    def set_row(value, row):
        for key in value:
            if isinstance(value[key], dict):
                set_row(value[key], row[key])
            else:
                value[key][i] = row[key]

    set_row(expected, row)
    assert same(d, expected)  # the other rows are unchanged

    key = rng.choice(["a", "new"])
    value = random_value(rng, n)
    d[key] = value
    assert same(d[key], value) and same(getattr(d, key), value)
    assert isinstance(d[key], DictList) == isinstance(value, dict)
    d.other = value
    assert same(d["other"], value)
    del d.other
    assert "other" not in d


@fuzz
def test_dictlist_setitem_with_other_keys_or_a_non_dict_is_refused(rng):
    n, values = random_values(rng, rng.randint(1, 6))
    d = DictList(values)
    before = copy.deepcopy(values)
    row = random_row_like(rng, values)
    row["zz"] = 1
    with pytest.raises(KeyError, match="needs keys"):
        d[0] = row
    with pytest.raises(TypeError, match="needs a dict"):
        d[0] = 5
    assert same(d, before)


@fuzz
def test_dictlist_values_of_different_lengths_raise_a_clear_value_error(rng):
    n, values = random_values(rng)
    m = rng.choice([k for k in range(8) if k != n])
    nested = rng.random() < 0.5
    d = DictList(values)
    if nested:
        d["z"] = {"p": [0] * n, "q": [0] * m}
        match = rf"different lengths: \{{'p': {n}, 'q': {m}\}}"
    else:
        d["z"] = [0] * m
        match = rf"different lengths: .*'z': {m}"
    with pytest.raises(ValueError, match=match):
        len(d)
    with pytest.raises(ValueError, match=match):
        d[0]
    with pytest.raises(ValueError, match=match):
        d[0:1]


def test_dictlist_missing_keys_and_values_without_length_are_clear_errors():
    d = DictList(a=[1, 2])
    with pytest.raises(AttributeError, match=r"no key 'b' \(keys: \['a'\]\)"):
        _ = d.b
    with pytest.raises(KeyError):
        d["b"]
    d.c = 3
    with pytest.raises(TypeError, match="'c' of type int has no length"):
        len(d)
    assert len(DictList()) == 0


@fuzz
def test_dictlist_pickles(rng):
    _, values = random_values(rng)
    d = DictList(values)
    copied = pickle.loads(pickle.dumps(d))
    assert type(copied) is DictList and same(copied, d)
    for key, value in values.items():
        assert isinstance(copied[key], DictList) == isinstance(value, dict)


# ---------------------------------------------------------------------------- stack_obs and preprocess_obss
def random_spec(rng, depth=0):
    """The structure of one env's observation: a leaf kind and shape, or a dict of specs."""
    leaves = ["int", "float", "bool", "uint8", "float32", "float64", "flipped", "tensor", "string"]
    if depth < 2 and rng.random() < 0.4:
        return {
            key: random_spec(rng, depth + 1)
            for key in rng.sample(["image", "direction", "mission", "x"], rng.randint(1, 3))
        }
    return rng.choice(leaves), rng.choice([(), (3,), (2, 2)])


def random_obs(rng, spec):
    if isinstance(spec, dict):
        return {key: random_obs(rng, s) for key, s in spec.items()}
    kind, shape = spec
    size = int(np.prod(shape))
    if kind == "int":
        return rng.randint(-5, 5)
    if kind == "float":
        return rng.uniform(-5, 5)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "string":
        return rng.choice(["go to the red ball", "open the door", ""])
    if kind == "uint8":
        return np.array([rng.randrange(256) for _ in range(size)], np.uint8).reshape(shape)
    if kind == "tensor":
        return torch.tensor([rng.uniform(-5, 5) for _ in range(size)]).reshape(shape)
    array = np.array([rng.uniform(-5, 5) for _ in range(size)], np.float64 if kind == "float64" else np.float32)
    array = array.reshape(shape)
    return np.flip(array) if kind == "flipped" else array


def expected_tensor(values):
    return torch.as_tensor(np.stack([np.asarray(v, dtype=np.float64) for v in values])).float()


def check_batch(batch, observations, spec):
    """stack_obs' result holds the observations, stacked along a first axis."""
    if isinstance(spec, dict):
        assert isinstance(batch, dict) and batch.keys() == spec.keys()
        for key in spec:
            check_batch(batch[key], [obs[key] for obs in observations], spec[key])
    elif spec[0] == "string":
        assert batch == observations
    elif spec[0] == "tensor":
        assert torch.equal(batch, torch.stack(observations))
    else:
        assert isinstance(batch, np.ndarray) and batch.shape == (len(observations), *np.shape(observations[0]))
        assert np.array_equal(batch, np.stack([np.asarray(obs) for obs in observations]))
        if spec[0] in ("uint8", "float32", "float64", "bool"):
            assert batch.dtype == np.asarray(observations[0]).dtype


def check_preprocessed(result, observations, spec):
    """default_preprocess_obss' result: float32 tensors of the numeric entries, strings left out."""
    if isinstance(spec, dict):
        kept = [key for key in spec if not (isinstance(spec[key], tuple) and spec[key][0] == "string")]
        assert isinstance(result, DictList) and sorted(result.keys()) == sorted(kept)
        for key in kept:
            check_preprocessed(result[key], [obs[key] for obs in observations], spec[key])
    else:
        assert isinstance(result, torch.Tensor) and result.dtype == torch.float32
        assert torch.equal(result, expected_tensor(observations))


@fuzz
def test_stack_obs_and_default_preprocess_obss_keep_every_observation(rng):
    spec = random_spec(rng)
    observations = [random_obs(rng, spec) for _ in range(rng.randint(1, 5))]
    batch = stack_obs(observations)
    check_batch(batch, observations, spec)
    if isinstance(spec, tuple) and spec[0] == "string":
        with pytest.raises(TypeError, match="pass your own preprocess_obss"):
            default_preprocess_obss(observations)
        return
    from_list = default_preprocess_obss(observations)
    check_preprocessed(from_list, observations, spec)
    assert same(default_preprocess_obss(batch), from_list)


def leaf_paths(spec, path=()):
    if isinstance(spec, dict):
        yield path  # the dict itself
        for key, s in spec.items():
            yield from leaf_paths(s, path + (key,))
    else:
        yield path


def replace_at(obs, path, f):
    if not path:
        return f(obs)
    obs = dict(obs)
    obs[path[0]] = replace_at(obs[path[0]], path[1:], f)
    return obs


def spec_at(spec, path):
    for key in path:
        spec = spec[key]
    return spec


@fuzz
def test_one_odd_observation_is_a_clear_value_error(rng):
    spec = random_spec(rng)
    observations = [random_obs(rng, spec) for _ in range(rng.randint(2, 5))]
    path = rng.choice(list(leaf_paths(spec)))
    target = spec_at(spec, path)
    if isinstance(target, dict):
        change = rng.choice(["add key", "drop key", "not a dict"])
        f = {
            "add key": lambda o: {**o, "zz": 1},
            "drop key": lambda o: {k: v for k, v in list(o.items())[1:]} if len(o) > 1 else {"zz": 1},
            "not a dict": lambda o: 7,
        }[change]
        words = "differ in type" if change == "not a dict" else "different keys"
    else:
        kind, shape = target
        change = rng.choice(["shape", "type"])
        if change == "shape":
            if kind == "string":
                f, words = (lambda o: np.zeros(3)), "differ in type"
            elif kind == "tensor":
                f, words = (lambda o: torch.zeros(*shape, 2)), "different shapes"
            else:
                f, words = (lambda o: np.zeros((*shape, 2))), "different shapes"
        else:
            f = {"string": lambda o: 3, "tensor": lambda o: np.zeros(shape)}.get(kind, lambda o: "a string")
            words = "differ in type"
    j = rng.randrange(len(observations))
    observations[j] = replace_at(observations[j], path, f)
    location = "observations" + "".join(f"[{key!r}]" for key in path)
    for function in (stack_obs, default_preprocess_obss):
        with pytest.raises(ValueError) as error:
            function(observations)
        message = str(error.value)
        assert words in message and message.startswith(location), message


def test_empty_observations_are_a_clear_value_error():
    with pytest.raises(ValueError, match="empty list of observations"):
        stack_obs([])
    with pytest.raises(ValueError, match="empty list of observations"):
        default_preprocess_obss([])


def test_ragged_and_non_numeric_observations_are_clear_errors():
    with pytest.raises(ValueError, match="observation 1 is not an array"):
        stack_obs([[1, 2], [[1, 2], [3]]])
    with pytest.raises(TypeError, match="dtype object .*pass your own preprocess_obss"):
        default_preprocess_obss([None, None])
    with pytest.raises(TypeError, match="complex128"):
        default_preprocess_obss(np.zeros(2, np.complex128))


def test_a_batch_dict_whose_entries_have_different_lengths_is_a_clear_error_when_used():
    result = default_preprocess_obss({"image": np.zeros((3, 2), np.uint8), "direction": np.zeros(4)})
    with pytest.raises(ValueError, match="different lengths"):
        result[0]


@fuzz
def test_batches_that_are_views_with_negative_strides_are_preprocessed(rng):
    """E.g. np.flip(images): torch cannot view such an array, so the preprocessing copies it."""
    shape = (rng.randint(1, 4), *rng.choice([(), (3,), (2, 2)]))
    dtype = rng.choice([np.float32, np.float64, np.uint8, np.int64])
    batch = np.arange(int(np.prod(shape))).astype(dtype).reshape(shape)
    axes = tuple(axis for axis in range(len(shape)) if rng.random() < 0.7) or (0,)
    flipped = np.flip(batch, axis=axes)
    expected = torch.tensor(flipped.copy(), dtype=torch.float32)
    assert torch.equal(default_preprocess_obss(flipped), expected)
    assert torch.equal(default_preprocess_obss({"image": flipped})["image"], expected)
