"""The CUDA-graph cache of ``rankbias.linalg.cuda.graphs`` without a GPU: its policy (eager, record,
replay, drop, fall back) with a recorder that keeps a graph's semantics (static input buffers,
outputs written in place on replay), on CPU tensors marked as CUDA ones.  Recording and replaying
real graphs is tested on a device (test_cuda_device.py)."""

import pytest
import torch

from rankbias.linalg.cuda import graphs as cuda_graphs


class Marked(torch.Tensor):
    """A CPU tensor that says it lives on a GPU, so the cache takes it."""

    @property
    def is_cuda(self):
        return True


def cuda_like(t: torch.Tensor) -> torch.Tensor:
    return t.as_subclass(Marked)


class Recorder:
    """Stands in for ``cuda_graphs.capture``: 'recording' runs fn once on the static inputs and
    keeps its outputs as the graph's; replay recomputes them in place from the static inputs'
    current contents, as a graph's kernels do.  Counts recordings and replays."""

    def __init__(self, fail=False):
        self.recorded, self.replays, self.fail = 0, 0, fail

    def __call__(self, fn, inputs):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.recorded += 1
        outputs = fn(*inputs)

        def replay():
            self.replays += 1
            for out, new in zip(outputs, fn(*inputs)):
                out.copy_(new)

        return replay, outputs


def spectrum(A):
    """A stand-in GPU call: (singular values, Frobenius norms) of A (b, m, n)."""
    return torch.linalg.svdvals(A), torch.linalg.vector_norm(A, dim=(-2, -1))


@pytest.fixture(autouse=True)
def empty_cache():
    cuda_graphs.clear()
    yield
    cuda_graphs.clear()


def test_a_repeated_signature_is_recorded_once_and_replayed_with_each_calls_own_input():
    rec = Recorder()
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(3, 6, 4, generator=g) for _ in range(4)]
    results = []
    for A in inputs:
        results.append(cuda_graphs.call(("spectrum", (3, 6, 4)), spectrum, (cuda_like(A),), record=rec))
    assert (rec.recorded, rec.replays) == (1, 3)  # first call eager, second records and replays, then replays
    assert cuda_graphs.recorded() == [("spectrum", (3, 6, 4))]
    for A, (s, fro) in zip(inputs, results):  # each call's own input, and no output overwritten by a later replay
        torch.testing.assert_close(s, torch.linalg.svdvals(A), rtol=0, atol=0)
        torch.testing.assert_close(fro, torch.linalg.vector_norm(A, dim=(-2, -1)), rtol=0, atol=0)


def test_another_signature_gets_its_own_graph_and_the_oldest_is_dropped(monkeypatch):
    monkeypatch.setattr(cuda_graphs, "MAX_GRAPHS", 2)
    rec = Recorder()
    A, B, C = (cuda_like(torch.randn(2, 5, n)) for n in (3, 4, 5))
    for X in (A, A, B, B):
        cuda_graphs.call(("spectrum", tuple(X.shape)), spectrum, (X,), record=rec)
    assert rec.recorded == 2 and len(cuda_graphs.recorded()) == 2
    cuda_graphs.call(("spectrum", tuple(A.shape)), spectrum, (A,), record=rec)  # A is now the most recent
    cuda_graphs.call(("spectrum", tuple(C.shape)), spectrum, (C,), record=rec)  # C's first call drops B
    assert cuda_graphs.recorded() == [("spectrum", (2, 5, 3))]
    before = rec.recorded
    cuda_graphs.call(("spectrum", tuple(B.shape)), spectrum, (B,), record=rec)  # B starts over: eager
    assert rec.recorded == before


def test_a_failed_recording_warns_once_and_leaves_the_signature_eager():
    rec = Recorder(fail=True)
    A = torch.randn(2, 4, 4)
    with pytest.warns(RuntimeWarning, match=r"could not record .* as a CUDA graph \(RuntimeError: operation not "
                                            r"permitted when stream is capturing\); calls with this signature run"):
        for _ in range(2):
            cuda_graphs.call("key", spectrum, (cuda_like(A),), record=rec)
    rec.fail = False
    for _ in range(3):
        s, _ = cuda_graphs.call("key", spectrum, (cuda_like(A),), record=rec)
        torch.testing.assert_close(s, torch.linalg.svdvals(A))
    assert rec.recorded == 0 and cuda_graphs.recorded() == []


def test_disabled_and_host_tensors_run_eagerly():
    rec = Recorder()
    A = torch.randn(2, 4, 4)
    with cuda_graphs.disabled():
        for _ in range(3):
            cuda_graphs.call("key", spectrum, (cuda_like(A),), record=rec)
    for _ in range(3):
        cuda_graphs.call("host", spectrum, (A,), record=rec)  # not a CUDA tensor: nothing to record
    assert rec.recorded == 0 and cuda_graphs.recorded() == []
    cuda_graphs.call("key", spectrum, (cuda_like(A),), record=rec)  # the block kept the cache as it was
    cuda_graphs.call("key", spectrum, (cuda_like(A),), record=rec)
    assert rec.recorded == 1


def test_the_gpu_path_keys_a_call_by_shapes_dtypes_and_arguments(monkeypatch):
    """spectral_cuda.replayed: the same function on another shape, dtype or argument is another graph."""
    from rankbias.linalg.cuda import spectral as spectral_cuda

    keys = []
    monkeypatch.setattr(cuda_graphs, "call", lambda key, fn, inputs: keys.append(key) or fn(*inputs))
    A = torch.randn(2, 5, 4)

    def scaled(X, factor):
        return X * factor

    for X, factor in ((A, 2.0), (A, 2.0), (A, 3.0), (A.double(), 2.0), (A[:1], 2.0)):
        (out,) = spectral_cuda.replayed(scaled, (X,), factor)
        torch.testing.assert_close(out, X * factor)
    assert keys[0] == keys[1] and len(set(keys)) == 4
    (out,) = spectral_cuda.replayed(scaled, (A,), 4.0, recordable=False)  # a route that reads the device: no graph
    assert len(keys) == 5 and torch.equal(out, A * 4.0)


def test_threads_calling_one_signature_each_get_their_own_result():
    """A Dask worker runs tasks in threads: their calls share one graph's static buffers, which the
    cache must hand to one call at a time."""
    from concurrent.futures import ThreadPoolExecutor

    rec = Recorder()
    g = torch.Generator().manual_seed(1)
    inputs = [torch.randn(8, 40, 30, generator=g) for _ in range(64)]

    def one(A):
        return cuda_graphs.call("shared", spectrum, (cuda_like(A),), record=rec)[0]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, inputs))
    assert rec.recorded == 1 and rec.replays == 63
    for A, s in zip(inputs, results):
        torch.testing.assert_close(s, torch.linalg.svdvals(A), rtol=0, atol=0)


def test_only_routes_that_read_nothing_back_to_the_host_are_recorded():
    """Block Jacobi checks convergence on the host each sweep and cuSOLVER its info flag: never recorded."""
    from rankbias.linalg.cuda import spectral as spectral_cuda

    batch, single, wide = torch.zeros(2, 300, 280), torch.zeros(1, 300, 280), torch.zeros(2, 100, 90)
    assert spectral_cuda.recordable_route(batch) and spectral_cuda.recordable_route(wide, True)  # Gram; Jacobi
    assert not spectral_cuda.recordable_route(single)  # one matrix past 256 columns: cuSOLVER
    assert not spectral_cuda.recordable_route(batch, True)  # past 256 columns on the Jacobi route: block Jacobi
