import pickle

import pytest
import torch

from torch_rl import DictList


def test_attribute_and_key_access_read_the_same_value():
    d = DictList({"a": [[1, 2], [3, 4]], "b": [[5], [6]]})
    assert d.a == [[1, 2], [3, 4]]
    assert d["b"] == [[5], [6]]


def test_integer_index_selects_one_row_of_every_value():
    d = DictList({"a": [[1, 2], [3, 4]], "b": [[5], [6]]})
    assert d[0] == DictList({"a": [1, 2], "b": [5]})
    assert d[1].b == [6]
    assert len(d) == 2


def test_slices_and_index_tensors_select_rows_of_tensors():
    d = DictList({"x": torch.arange(10), "y": torch.arange(10) * 2})
    assert torch.equal(d[2:5].x, torch.tensor([2, 3, 4]))
    index = torch.tensor([7, 1])
    assert torch.equal(d[index].y, torch.tensor([14, 2]))
    assert len(d[index]) == 2


def test_setting_a_row_writes_every_value():
    d = DictList({"x": torch.zeros(3), "y": torch.zeros(3, 2)})
    d[1] = {"x": torch.tensor(5.0), "y": torch.tensor([1.0, 2.0])}
    assert d.x.tolist() == [0, 5, 0]
    assert d.y[1].tolist() == [1, 2]


def test_setting_an_attribute_adds_a_key():
    d = DictList({"x": [1]})
    d.z = [2]
    assert d["z"] == [2] and set(d) == {"x", "z"}


def test_nested_dicts_are_indexed_recursively():
    d = DictList({"obs": {"image": torch.ones(4, 2), "text": torch.zeros(4, 3)}, "v": torch.arange(4)})
    row = d[torch.tensor([0, 3])]
    assert isinstance(row.obs, DictList)
    assert row.obs.image.shape == (2, 2)


def test_mismatched_lengths_raise_a_clear_error():
    d = DictList({"a": [1, 2], "b": [1, 2, 3]})
    with pytest.raises(ValueError, match="different lengths"):
        len(d)
    with pytest.raises(ValueError, match="different lengths"):
        d[0]


def test_missing_attribute_raises_attribute_error_naming_keys():
    with pytest.raises(AttributeError, match="'nope'"):
        _ = DictList({"a": [1]}).nope


def test_setting_a_row_with_other_keys_raises():
    d = DictList({"a": [1, 2]})
    with pytest.raises(KeyError):
        d[0] = {"b": 3}


def test_empty_dictlist_has_length_zero():
    assert len(DictList()) == 0


def test_pickle_round_trip_keeps_type_and_content():
    d = DictList({"a": [1, 2], "b": {"c": [3, 4]}})
    e = pickle.loads(pickle.dumps(d))
    assert isinstance(e, DictList) and isinstance(e.b, DictList) and e == d
