import pytest
import torch
from unnas.moco.queue import KeyQueue, gather_keys


def keys(*values):
    return torch.tensor([[float(v), -float(v)] for v in values])


def test_fifo_order_and_wrap_around_on_three_slots():
    q = KeyQueue(3, 2)
    assert q.negatives().shape == (0, 2)  # starts empty: no fake negatives
    q.enqueue(keys(1))
    assert q.ordered()[:, 0].tolist() == [1]
    q.enqueue(keys(2, 3))
    assert q.ordered()[:, 0].tolist() == [1, 2, 3] and int(q.ptr) == 0 and int(q.count) == 3
    q.enqueue(keys(4))  # overwrites the oldest (1) in slot 0
    assert q.keys[:, 0].tolist() == [4, 2, 3]
    assert q.ordered()[:, 0].tolist() == [2, 3, 4]
    q.enqueue(keys(5, 6))  # wraps: slots 1, 2
    assert q.keys[:, 0].tolist() == [4, 5, 6] and int(q.ptr) == 0
    assert q.ordered()[:, 0].tolist() == [4, 5, 6]
    q.enqueue(keys(7, 8))
    assert q.ordered()[:, 0].tolist() == [6, 7, 8]
    assert q.keys[:, 1].tolist() == [-7, -8, -6]


def test_partial_batches_wrap_across_the_end():
    q = KeyQueue(3, 2)
    q.enqueue(keys(1, 2))
    q.enqueue(keys(3, 4))  # slot 2 then slot 0
    assert q.keys[:, 0].tolist() == [4, 2, 3] and int(q.ptr) == 1
    assert q.ordered()[:, 0].tolist() == [2, 3, 4]


def test_enqueue_errors():
    q = KeyQueue(3, 2)
    with pytest.raises(ValueError):
        q.enqueue(keys(1, 2, 3, 4))
    with pytest.raises(ValueError):
        q.enqueue(torch.zeros(1, 5))
    with pytest.raises(RuntimeError):
        KeyQueue(0, 2).enqueue(keys(1))


def test_state_dict_restores_size_pointer_and_contents():
    q = KeyQueue(3, 2)
    q.enqueue(keys(1, 2))
    q.enqueue(keys(3, 4))
    fresh = KeyQueue(0, 2)  # not yet allocated, as in a newly built objective
    fresh.load_state_dict(q.state_dict())
    assert fresh.size == 3 and int(fresh.ptr) == 1 and int(fresh.count) == 3
    assert torch.equal(fresh.ordered(), q.ordered())
    fresh.enqueue(keys(9))
    q.enqueue(keys(9))
    assert torch.equal(fresh.keys, q.keys)


def test_gather_keys_is_identity_in_one_process():
    k = keys(1, 2)
    assert gather_keys(k) is k
