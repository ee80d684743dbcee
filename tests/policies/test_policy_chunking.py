"""Chunk execution: when new chunks are requested, which step is executed, ensembling weights."""
import numpy as np
import pytest

from selfflow_robot.policies.chunking import ActionChunker


def chunk(value, h=4, d=2):
    """A chunk whose step i holds value + i (so the executed index is visible)."""
    return np.stack([np.full(d, value + i, np.float64) for i in range(h)])


def test_execute_horizon_requests_a_chunk_every_n_steps():
    c = ActionChunker(horizon=4, execute_horizon=2)
    requested, executed = [], []
    for t in range(6):
        if c.needs_chunk():
            requested.append(t)
            c.push(chunk(100 * t))
        executed.append(c.pop()[0])
    assert requested == [0, 2, 4]
    assert executed == [0, 1, 200, 201, 400, 401]


def test_full_horizon_default_and_reset():
    c = ActionChunker(horizon=3)
    c.push(chunk(0, h=3))
    assert [c.pop()[0] for _ in range(3)] == [0, 1, 2]
    assert c.needs_chunk()
    with pytest.raises(RuntimeError, match="push"):
        c.pop()
    c.push(chunk(10, h=3))
    c.pop()
    c.reset()
    assert c.needs_chunk() and c.t == 0


def test_temporal_ensemble_uniform_mean_of_overlapping_predictions():
    c = ActionChunker(horizon=3, execute_horizon=1, ensemble=True, temperature=0.0)
    out = []
    for t in range(4):
        assert c.needs_chunk()
        c.push(chunk(10 * t, h=3))
        out.append(c.pop()[0])
    # t=0: [0]; t=1: mean(1, 10); t=2: mean(2, 11, 20); t=3: mean(12, 21, 30) (chunk 0 expired)
    assert out == pytest.approx([0, 5.5, 11.0, 21.0])


def test_temporal_ensemble_weights_favour_the_oldest_prediction():
    temp = 0.5
    c = ActionChunker(horizon=2, execute_horizon=1, ensemble=True, temperature=temp)
    c.push(chunk(0, h=2))
    c.pop()
    c.push(chunk(10, h=2))
    got = c.pop()[0]
    w = np.exp(-temp * np.arange(2))
    assert got == pytest.approx((w[0] * 1 + w[1] * 10) / w.sum())


@pytest.mark.parametrize("kwargs", [dict(execute_horizon=0), dict(execute_horizon=5), dict(temperature=-1.0)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ActionChunker(horizon=4, **kwargs)


def test_push_checks_shape():
    with pytest.raises(ValueError, match="H=4"):
        ActionChunker(horizon=4).push(np.zeros((3, 2)))
