"""Math of the native scVI/scANVI: likelihoods vs scipy, KL vs closed forms, hierarchy."""
import numpy as np
import pytest
import torch
from scipy import stats

from methods.base import MethodInputError
from methods.native.scvi.distributions import (
    SparseCounts,
    count_nll_training,
    gaussian_entropy,
    kl_normal_normal,
    kl_normal_standard,
    log_nb,
    log_poisson,
    log_zinb,
)
from methods.native.scvi.hierarchy import hierarchical_log_probs, parent_index



@pytest.fixture(autouse=True, scope="module")
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _params(n=6, g=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.negative_binomial(2, 0.3, size=(n, g)).astype(float)
    x[rng.random((n, g)) < 0.4] = 0
    mu = rng.gamma(2.0, 2.0, size=(n, g))
    theta = rng.gamma(2.0, 1.0, size=g)
    pi_logit = rng.normal(size=(n, g))
    return x, mu, theta, pi_logit


def test_nb_log_prob_matches_scipy():
    x, mu, theta, _ = _params()
    ours = log_nb(torch.tensor(x), torch.tensor(np.log(mu)), torch.tensor(np.log(theta))).numpy()
    ref = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


def test_zinb_log_prob_matches_scipy_mixture():
    x, mu, theta, pi_logit = _params()
    ours = log_zinb(torch.tensor(x), torch.tensor(np.log(mu)), torch.tensor(np.log(theta)),
                    torch.tensor(pi_logit)).numpy()
    pi = 1 / (1 + np.exp(-pi_logit))
    ref = np.log((x == 0) * pi + (1 - pi) * stats.nbinom.pmf(x, theta, theta / (theta + mu)))
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_poisson_log_prob_matches_scipy():
    x, mu, _, _ = _params()
    ours = log_poisson(torch.tensor(x), torch.tensor(np.log(mu))).numpy()
    np.testing.assert_allclose(ours, stats.poisson.logpmf(x, mu), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("likelihood", ["zinb", "nb", "poisson"])
@pytest.mark.parametrize("per_cell_theta", [False, True])
def test_training_nll_equals_exact_minus_constant_with_same_gradients(likelihood, per_cell_theta):
    x, mu, theta, pi_logit = _params(seed=1)
    X = torch.tensor(x)
    rows, cols = np.nonzero(x)
    nz = SparseCounts(torch.tensor(rows), torch.tensor(cols), torch.tensor(x[rows, cols]))
    th = np.log(np.tile(theta, (x.shape[0], 1)) * (1.5 if per_cell_theta else 1.0)) if per_cell_theta else np.log(theta)

    def leaves():
        return [torch.tensor(np.log(mu), requires_grad=True), torch.tensor(th, requires_grad=True),
                torch.tensor(pi_logit, requires_grad=True)]

    a = leaves()
    fast = count_nll_training(likelihood, X, nz, a[0], a[1], a[2] if likelihood == "zinb" else None)
    b = leaves()
    full = {"zinb": lambda: log_zinb(X, b[0], b[1], b[2]), "nb": lambda: log_nb(X, b[0], b[1]),
            "poisson": lambda: log_poisson(X, b[0])}[likelihood]()
    const = torch.lgamma(X + 1).sum(-1)
    np.testing.assert_allclose(fast.detach().numpy(), (-full.sum(-1) - const).detach().numpy(), rtol=1e-10, atol=1e-9)
    fast.sum().backward()
    (-full.sum()).backward()
    for p, q in zip(a, b):
        if q.grad is None:
            assert p.grad is None or torch.all(p.grad == 0)
        else:
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_kl_terms_match_closed_forms():
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    v1, v2 = torch.rand(5, 3, generator=g) + 0.1, torch.rand(5, 3, generator=g) + 0.1
    N = torch.distributions.Normal
    ref_std = torch.distributions.kl_divergence(N(m1, v1.sqrt()), N(torch.zeros(3), torch.ones(3))).sum(-1)
    ref = torch.distributions.kl_divergence(N(m1, v1.sqrt()), N(m2, v2.sqrt())).sum(-1)
    torch.testing.assert_close(kl_normal_standard(m1, v1), ref_std)
    torch.testing.assert_close(kl_normal_normal(m1, v1, m2, v2), ref)
    torch.testing.assert_close(gaussian_entropy(v1), N(m1, v1.sqrt()).entropy().sum(-1))
    assert torch.all(kl_normal_normal(m1, v1, m1, v1).abs() < 1e-12)


def test_hierarchical_probabilities_sum_to_one_per_level_and_follow_note_4():
    classes = ["CD4 naive", "CD4 memory", "CD8 naive", "B"]
    hierarchy = {"CD4 naive": "T", "CD4 memory": "T", "CD8 naive": "T", "B": "B cell"}
    parent, coarse = parent_index(classes, hierarchy)
    assert coarse == ["B cell", "T"] and parent.tolist() == [1, 1, 1, 0]
    g = torch.Generator().manual_seed(1)
    fine_logits, coarse_logits = torch.randn(9, 4, generator=g), torch.randn(9, 2, generator=g)
    log_fine, log_coarse = hierarchical_log_probs(fine_logits, coarse_logits, torch.as_tensor(parent))
    fine, grp = log_fine.exp(), log_coarse.exp()
    torch.testing.assert_close(fine.sum(-1), torch.ones(9))
    torch.testing.assert_close(grp.sum(-1), torch.ones(9))
    # the fine probabilities of a group add up to that group's probability
    torch.testing.assert_close(fine[:, :3].sum(-1), grp[:, 1])
    torch.testing.assert_close(fine[:, 3], grp[:, 0])
    # q(y_i|z) = f_i / sum_{siblings} f_j * f^g_{parent}
    f = torch.softmax(fine_logits, -1)
    torch.testing.assert_close(fine[:, 0], f[:, 0] / f[:, :3].sum(-1) * grp[:, 1])


def test_labels_missing_from_hierarchy_raise():
    with pytest.raises(MethodInputError, match="not in the hierarchy"):
        parent_index(["a", "b", "c"], {"a": "x", "b": "x"})


@pytest.mark.parametrize("likelihood", ["zinb", "nb"])
@pytest.mark.parametrize("per_cell_theta", [False, True])
def test_fused_cpu_kernel_matches_autograd_path(likelihood, per_cell_theta):
    from methods.native.scvi.fused import fused_count_nll

    g = torch.Generator().manual_seed(0)
    n, G = 16, 50
    x = (torch.poisson(torch.rand(n, G, generator=g, dtype=torch.float32) * 3, generator=g) * (torch.rand(n, G, generator=g, dtype=torch.float32) < 0.4)).float()
    x[0, 0], x[1, 1] = 40.0, 300.0  # past the small-count product path
    rows = torch.randint(0, 2, (n,), generator=g)
    weights = torch.linspace(0.1, 1.0, n, dtype=torch.float32)  # unequal per-cell weights exercise the backward

    def run(fn):
        lm = (torch.randn(n, G, generator=torch.Generator().manual_seed(1), dtype=torch.float32) - 1).requires_grad_()
        lt = (1.5 * torch.randn(2, G, generator=torch.Generator().manual_seed(2), dtype=torch.float32)).requires_grad_()
        pi = torch.randn(n, G, generator=torch.Generator().manual_seed(3), dtype=torch.float32).requires_grad_()
        theta = lt[rows] if per_cell_theta else lt[0]
        val = fn(lm, theta, pi if likelihood == "zinb" else None)
        (val * weights).sum().backward()
        return val.detach(), [t.grad for t in (lm, lt, pi)]

    r, c = x.nonzero(as_tuple=True)
    nz = SparseCounts(r, c, x[r, c])
    fused, g_fused = run(lambda lm, lt, pi: fused_count_nll(likelihood, x, lm, lt, pi))
    ref, g_ref = run(lambda lm, lt, pi: count_nll_training(likelihood, x, nz, lm, lt, pi))
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=1e-3)
    for a, b in zip(g_fused, g_ref):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_fused_kernel_vector_math_is_float32_accurate():
    """The kernel's own exp / log / (softplus, sigmoid) agree with float64 numpy to a few float32
    ulps over the ranges training meets, and stay finite at the extremes."""
    import numba

    from methods.native.scvi import fused

    @numba.njit(error_model="numpy")
    def apply(kind, a):
        out, out2 = np.empty_like(a), np.empty_like(a)
        for i in range(a.shape[0]):
            if kind == 0:
                out[i] = fused._expf(a[i])
            elif kind == 1:
                out[i] = fused._logf(a[i])
            else:
                out[i], out2[i] = fused._softplus_sigmoid(a[i])
        return out, out2

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-87, 88, 20000), rng.uniform(-1, 1, 5000), [0.0, -87.0, 88.0]]).astype(np.float32)
    ref = np.exp(x.astype(np.float64))
    assert np.max(np.abs(apply(0, x)[0] - ref) / ref) < 2.5e-7
    pos = np.exp(rng.uniform(-80, 80, 20000)).astype(np.float32)
    pos = np.concatenate([pos, rng.uniform(0.5, 2.0, 5000).astype(np.float32), np.float32([1.0, 2.0])])
    ref = np.log(pos.astype(np.float64))
    assert np.max(np.abs(apply(1, pos)[0] - ref) / np.maximum(np.abs(ref), 1.0)) < 2.5e-7
    v = np.concatenate([rng.uniform(-30, 30, 20000), [-200.0, -88.0, 0.0, 88.0, 200.0]]).astype(np.float32)
    sp, sig = apply(2, v)
    v64 = v.astype(np.float64)
    assert np.all(np.isfinite(sp)) and np.all(np.isfinite(sig))
    np.testing.assert_allclose(sp, np.logaddexp(0.0, v64), rtol=3e-7, atol=2e-7)
    np.testing.assert_allclose(sig, 1.0 / (1.0 + np.exp(-v64)), rtol=3e-7, atol=1e-7)


@pytest.mark.parametrize("runner", ["openmp", "python_threads"])
@pytest.mark.parametrize("likelihood,per_cell_theta", [("zinb", False), ("nb", False), ("zinb", True)])
def test_fused_kernel_row_blocks_on_two_threads_and_unsorted_nonzeros(likelihood, per_cell_theta, runner,
                                                                     monkeypatch):
    """n >= 64 cells on 2 torch threads split the rows into blocks, run on torch's OpenMP team
    (fused._omp_row_block) or, without torch's libgomp, on Python threads: values and gradients
    equal the 1-thread kernel's bit for bit (each row is one thread's). Non-zeros given out of
    row order give the same values, and all match the autograd path."""
    from methods.native.scvi import fused

    if runner == "openmp":
        if fused._openmp() is None:
            pytest.skip("torch here does not run its ops on a libgomp beside it")

        def no_fallback(*args):
            raise AssertionError("the row blocks fell back to Python threads")
        monkeypatch.setattr(fused, "_run_rows_on_python_threads", no_fallback)
    else:
        monkeypatch.setattr(fused, "_openmp", lambda: None)
        used = []
        real = fused._run_rows_on_python_threads
        monkeypatch.setattr(fused, "_run_rows_on_python_threads", lambda *a: (used.append(1), real(*a)))
    g = torch.Generator().manual_seed(0)
    n, G = 96, 40
    f32 = dict(generator=g, dtype=torch.float32)  # the fused path runs on float32 only
    x = (torch.poisson(torch.rand(n, G, **f32) * 3, generator=g) * (torch.rand(n, G, **f32) < 0.3)).float()
    x[0, 0] = 60.0  # past the small-count tables
    r, c = x.nonzero(as_tuple=True)
    perm = torch.randperm(len(r), generator=g)
    nz_sorted, nz_shuffled = SparseCounts(r, c, x[r, c]), SparseCounts(r[perm], c[perm], x[r, c][perm])
    lm0 = torch.randn(n, G, **f32) - 1
    lt0 = torch.randn(n if per_cell_theta else 1, G, **f32)
    pi0 = torch.randn(n, G, **f32) if likelihood == "zinb" else None
    weights = torch.linspace(0.1, 1.0, n)

    def run(fn, nz):
        leaves = [None if t is None else t.clone().requires_grad_() for t in (lm0, lt0, pi0)]
        lt = leaves[1] if per_cell_theta else leaves[1][0]
        val = fn(x, leaves[0], lt, leaves[2], nz)
        (val * weights).sum().backward()
        return [val.detach()] + [t.grad for t in leaves if t is not None]

    ref = run(lambda xx, lm, lt, pi, nz: count_nll_training(likelihood, xx, nz, lm, lt, pi), nz_sorted)
    one_thread = run(lambda *a: fused.fused_count_nll(likelihood, *a), nz_sorted)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for nz in (nz_sorted, nz_shuffled):
            two_threads = run(lambda *a: fused.fused_count_nll(likelihood, *a), nz)
            for a, b, expected in zip(two_threads, one_thread, ref):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
                torch.testing.assert_close(a, expected, rtol=1e-4, atol=1e-3)
    finally:
        torch.set_num_threads(before)
    assert runner == "openmp" or used, "the Python-thread fallback was not exercised"


@pytest.mark.parametrize("n_cat", [0, 3])
def test_matmul_shortcuts_match_plain_linear_layers(n_cat):
    """RowBlockLinear (the decoder heads), LeadingRowsLinear (the labelled z-pass) and the
    one-hot concatenation give the values and gradients of the plain layers they replace."""
    from methods.native.scvi.module import FCLayers, RowBlockLinear

    g = torch.Generator().manual_seed(0)
    h = torch.randn(9, 5, generator=g, requires_grad=True)
    lin = torch.nn.Linear(5, 8)
    w_out = torch.randn(9, 8, generator=g)
    a, b = RowBlockLinear.apply(h, lin.weight, lin.bias, (3, 5))
    (torch.cat([a, b], 1) * w_out).sum().backward()
    got = [h.grad.clone(), lin.weight.grad.clone(), lin.bias.grad.clone()]
    h.grad = None
    lin.zero_grad()
    (lin(h) * w_out).sum().backward()
    for x, y in zip(got, [h.grad, lin.weight.grad, lin.bias.grad]):
        torch.testing.assert_close(x, y)
    # deferred: the backward hands (h, output gradients) over and leaves the weight's gradient unset
    handed = []
    h.grad = None
    lin.zero_grad(set_to_none=True)
    a, b = RowBlockLinear.apply(h, lin.weight, lin.bias, (3, 5), lambda hh, grads: handed.append((hh, grads)))
    (torch.cat([a, b], 1) * w_out).sum().backward()
    assert lin.weight.grad is None and lin.bias.grad is None and len(handed) == 1
    torch.testing.assert_close(h.grad, got[0])
    with torch.no_grad():
        g_w, g_b = RowBlockLinear.weight_grads(*handed[0], lin.weight)
    torch.testing.assert_close(g_w, got[1])
    torch.testing.assert_close(g_b, got[2])

    layers = FCLayers(20, 16, 1, 16, n_cat=n_cat, dropout=0.0).train()
    x = torch.randn(9, 20, generator=g)
    cat = torch.randint(0, 3, (9,), generator=g) if n_cat else None
    part = layers.forward_first_units(x, cat, 6)
    (part * w_out[:, :6]).sum().backward()
    g_part = layers.linears[0].weight.grad.clone()
    layers.zero_grad()
    full = layers(x, cat)[:, :6]
    (full * w_out[:, :6]).sum().backward()
    torch.testing.assert_close(part, full)
    torch.testing.assert_close(g_part, layers.linears[0].weight.grad)
    # the layer's covariate term is the weight column of each cell's category (none without one)
    lin0 = layers.linears[0]
    with torch.no_grad():
        ref = x @ lin0.weight[:, :20].T + lin0.bias + (lin0.weight[:, 20:].T[cat] if n_cat else 0.0)
        torch.testing.assert_close(layers(x, cat), torch.relu(layers.norms[0](ref)))
        if n_cat:  # no category given: no covariate term
            ref0 = x @ lin0.weight[:, :20].T + lin0.bias
            torch.testing.assert_close(layers(x, None), torch.relu(layers.norms[0](ref0)))


def test_torch_threads_restores_the_thread_count():
    from methods.native.scvi.model import torch_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_fused_adam_step_matches_torch_adam_bit_for_bit():
    """FusedAdamStep (cached lists, direct kernel call) updates exactly as Adam(fused=True).step(),
    also when a parameter has no gradient in some steps, over two parameter groups."""
    from methods.native.scvi.model import FusedAdamStep, make_adam

    def run(direct: bool):
        torch.manual_seed(0)
        a, b, c, d = (torch.nn.Parameter(torch.randn(shape)) for shape in ((50, 7), (7,), (3, 4), (5,)))
        opt = make_adam([a, b, d], lr=1e-2, eps=0.01, weight_decay=1e-6, device=torch.device("cpu"))
        opt.add_param_group({"params": [c], "lr": 3e-3})
        step = FusedAdamStep(opt)
        assert step.enabled
        for i in range(12):
            opt.zero_grad(set_to_none=True)
            loss = (a.sin() * torch.arange(7.0)).sum() + (b ** 2).sum()
            if i % 3 != 1:  # c gets no gradient in every third step
                loss = loss + c.cos().sum()
            if i % 4 in (1, 2):  # d, in a's group, has none in two steps of four (the group's subset changes)
                loss = loss + (d * d.sin()).sum()
            loss.backward()
            step() if direct else opt.step()
        return [t.detach().clone() for t in (a, b, c, d)] + [opt.state[a]["exp_avg_sq"].clone()] + [
            opt.state[p]["step"].clone() for p in (a, c, d)]

    direct, torch_step = run(True), run(False)
    assert [float(s) for s in direct[-3:]] == [12.0, 8.0, 6.0]
    for x, y in zip(direct, torch_step):
        assert torch.equal(x, y)
    # a state loaded into the optimizer is the one the next steps update
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([w], lr=0.1, fused=True)
    step = FusedAdamStep(opt)
    for _ in range(2):
        opt.zero_grad()
        (w * 2).sum().backward()
        step()
    opt.load_state_dict(opt.state_dict())
    opt.zero_grad()
    (w * 2).sum().backward()
    step()
    assert float(opt.state[w]["step"]) == 3.0
    assert not FusedAdamStep(torch.optim.Adam([torch.nn.Parameter(torch.ones(2))], amsgrad=True, fused=True)).enabled


def test_optimizer_threads_times_both_counts_then_keeps_one_and_updates_alike():
    from methods.native.scvi.model import OptimizerThreads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = []
        for forced in (None, 1, 2):
            torch.manual_seed(0)
            w = torch.nn.Parameter(torch.randn(300, 40))
            opt = torch.optim.Adam([w], lr=1e-2, eps=0.01)
            chooser = OptimizerThreads(n_trials=3)
            if forced is not None:
                chooser.choice = forced
            for step in range(10):
                opt.zero_grad()
                (w.sin() * torch.arange(40.0)).sum().backward()
                chooser.step(opt)
                assert torch.get_num_threads() == 2  # restored after every step
            if forced is None:
                assert [len(v) for v in chooser.times.values()] == [3, 3] and chooser.choice in (1, 2)
            results.append(w.detach().clone())
        # the thread count used for a step never changes the update
        assert torch.equal(results[0], results[1]) and torch.equal(results[1], results[2])
        # off the CPU nothing is timed: all host threads from the first step
        assert OptimizerThreads(device=torch.device("cuda")).choice == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_dropout_mask_rate_scale_gradient_and_seed(threads):
    """The cheap CPU dropout: drops round(p 2^16) / 2^16 of the entries, scales the rest so the
    mask has mean 1, passes the same mask to the gradient, and repeats exactly for a seed on any
    thread count."""
    from methods.native.scvi.module import dropout, dropout_keep_mask

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for dtype in (torch.float32, torch.float64):
            x = torch.randn(300, 64, dtype=dtype, requires_grad=True)
            outs = []
            for _ in range(2):
                torch.manual_seed(3)
                y = dropout(x, 0.1, True)
                (y * torch.arange(64, dtype=dtype)).sum().backward()
                outs.append((y.detach(), x.grad.clone(), torch.rand(4)))
                x.grad = None
            for a, b in zip(*outs):
                assert torch.equal(a, b)
            y, grad = outs[0][0], outs[0][1]
            kept = y != 0
            scale = 2**16 / (2**16 - round(0.1 * 2**16))
            torch.testing.assert_close(y[kept], (x.detach() * scale)[kept])
            torch.testing.assert_close(grad, kept.to(dtype) * scale * torch.arange(64, dtype=dtype))
        torch.manual_seed(0)
        m = dropout_keep_mask((2000, 500), 0.3)
        drop = (m == 0).double().mean().item()
        assert abs(drop - round(0.3 * 2**16) / 2**16) < 4 * (0.3 * 0.7 / m.numel()) ** 0.5
        assert abs(m.double().mean().item() - 1.0) < 0.005
        values = torch.unique(m).tolist()
        assert values[0] == 0.0 and values[1:] == [pytest.approx(2**16 / (2**16 - round(0.3 * 2**16)))]
        # the four 16-bit lanes of each hash are used alike, and neighbouring masks of one draw differ
        torch.manual_seed(1)
        a, b = dropout_keep_mask((64,), 0.5), dropout_keep_mask((64,), 0.5)
        assert not torch.equal(a, b)
        lanes = (m.reshape(-1)[: 4 * (m.numel() // 4)].reshape(-1, 4) == 0).double().mean(0)
        assert torch.all((lanes - 0.3).abs() < 0.01)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(dropout(x, 0.1, False), x) and torch.equal(dropout(x, 0.0, True), x)
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))  # F.dropout's p = 1
    # a float64 mask carries the scale in float64 (not a rounded float32 value), so its mean is 1 there too
    m64 = dropout_keep_mask((1000,), 0.1, torch.float64)
    assert set(m64.unique().tolist()) == {0.0, 2**16 / (2**16 - round(0.1 * 2**16))}
    with pytest.raises(ValueError, match="between 0 and 1"):
        dropout_keep_mask((3,), 1.5)


def test_gaussian_head_loads_weights_saved_with_separate_mean_and_log_var_layers():
    from methods.native.scvi.module import VAR_EPS, GaussianHead

    torch.manual_seed(0)
    old = {"mean.weight": torch.randn(3, 5), "mean.bias": torch.randn(3),
           "log_var.weight": torch.randn(3, 5), "log_var.bias": torch.randn(3)}
    head = GaussianHead(5, 3)
    head.load_state_dict(old)
    h = torch.randn(4, 5)
    m, v = head(h)
    torch.testing.assert_close(m, h @ old["mean.weight"].t() + old["mean.bias"])
    torch.testing.assert_close(v, (h @ old["log_var.weight"].t() + old["log_var.bias"]).exp() + VAR_EPS)


def test_minibatch_log_x_is_log1p_of_its_dense_counts():
    import scipy.sparse as sp

    from methods.native.scvi.data import CountData

    rng = np.random.default_rng(0)
    X = sp.random(40, 30, density=0.3, random_state=1, format="csr", dtype=np.float32)
    X.data = np.round(X.data * 20) + 1
    idx = np.sort(rng.choice(40, 16, replace=False))
    data = CountData(X, np.arange(40) % 2, np.arange(40) % 3)
    mb = data.minibatch(idx)
    torch.testing.assert_close(mb.log_x, torch.log1p(mb.x))
    # the encoder-only minibatch (Algorithm 1's labelled step): same input, no counts
    light = data.minibatch(idx, counts=False)
    assert light.x is None and light.nz is None
    assert torch.equal(light.log_x, mb.log_x) and torch.equal(light.batch, mb.batch)
    assert torch.equal(light.label, mb.label) and np.array_equal(light.index, idx)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_device_resident_minibatch_equals_the_host_minibatch(device):
    """DeviceCSR (the GPU default) gathers the same dense block, non-zeros, log1p and codes as scipy's slice."""
    import scipy.sparse as sp

    from methods.native.scvi.data import CountData

    X = sp.random(50, 30, density=0.25, random_state=2, format="csr", dtype=np.float32)
    X.data = np.round(X.data * 50) + 1
    X.data[X.indptr[7]:X.indptr[8]] = 0  # a row with no counts
    X.eliminate_zeros()
    assert X.indptr[8] == X.indptr[7]
    idx = np.array([7, 3, 49, 0, 3, 21])  # unsorted, a repeat and an empty row
    host = CountData(X, np.arange(50) % 2, np.arange(50) % 3 - 1)
    resident = CountData(X, np.arange(50) % 2, np.arange(50) % 3 - 1, device=device, counts_on_device=True)
    assert host.on_device is None and resident.on_device is not None
    for counts in (True, False):
        a, b = host.minibatch(idx, counts), resident.minibatch(idx, counts)
        for field in ("x", "log_x", "batch", "label"):
            va, vb = getattr(a, field), getattr(b, field)
            assert (va is None) == (vb is None)
            if va is not None:
                assert torch.equal(va, vb.cpu()), field
        if counts:
            for field in ("rows", "cols", "values"):
                assert torch.equal(getattr(a.nz, field), getattr(b.nz, field).cpu()), field
        else:
            assert b.nz is None
        assert np.array_equal(b.index, idx)
