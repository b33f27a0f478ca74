"""User-facing scVI and scANVI models: registration, training, posterior queries, save/load.

Training follows the paper's Hyperparameters section: Adam (lr 1e-3, eps 0.01), minibatches
of 128 cells, deterministic (linear) KL warm-up, optional early stopping on a held-out
fraction (no per-step validation). scANVI trains by Algorithm 1 (joint, J + alpha C) or
Algorithm 2 (alternating: one epoch on J, then c epochs on the classifier), Supplementary
Note 3, or starts from a trained scVI.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from methods.base import MethodInputError

from .data import CountData, as_count_csr, categorical_codes, library_prior, to_device_async
from .de import (DEFAULT_DELTA, change_log_k, check_delta, de_table, expression_fraction, monte_carlo_compare,
                 population_lfc_draws, resolve_delta, resolve_expression)
from .hierarchy import parent_index
from .distributions import gaussian_entropy
from .module import VAE, RowBlockLinear, random_stream
from .overlap import SecondThread
from .scanvi_module import LABELLED_ELBOS, SCANVAE

FORMAT_VERSION = 1


def default_n_epochs(n_cells: int) -> int:
    """About 400 epochs for 20k cells, fewer passes for larger data (same number of updates)."""
    return int(min(400, max(10, round(400 * 20_000 / max(n_cells, 1)))))


def pick_device(device: Optional[str]) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def make_adam(params, lr: float, eps: float, weight_decay: float, device: torch.device):
    params = [p for p in params if p.requires_grad]
    try:  # the fused kernel updates all parameters in one pass (CPU and CUDA)
        return torch.optim.Adam(params, lr=lr, eps=eps, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, eps=eps, weight_decay=weight_decay)


@contextlib.contextmanager
def torch_threads(n: Optional[int]):
    """Run a block on ``n`` torch threads (None: the current count), then restore the previous count."""
    before = torch.get_num_threads()
    n = int(n) if n else before
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


class FusedAdamStep:
    """``optimizer.step()`` for a ``torch.optim.Adam(fused=True)``, calling its fused kernel
    with per-parameter lists kept from step to step.

    torch's Adam.step regroups every parameter, gradient and state tensor by device and dtype
    in Python on each call: ~0.7 ms per step here against ~0.8 ms for the update itself (a
    scANVI step is ~26 ms on one thread). The kernel call and its arguments are the ones
    ``torch.optim.adam._fused_adam`` makes, so the parameters are bit-identical (tested). Falls
    back to ``optimizer.step()`` for the first step (which creates the state), for parameters
    off the CPU, for any option this path does not handle, and if the private kernel is missing.
    """

    _kernel = getattr(torch, "_fused_adam_", None)

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self._lists: dict = {}  # group index -> (ids of the parameters with gradients, their lists)
        d = optimizer.defaults
        self.enabled = (self._kernel is not None and isinstance(optimizer, torch.optim.Adam)
                        and d.get("fused") and not d.get("amsgrad") and not d.get("maximize")
                        and not d.get("capturable") and not d.get("differentiable")
                        and not d.get("decoupled_weight_decay", False)
                        and all(p.device.type == "cpu" for g in optimizer.param_groups for p in g["params"]))

    def __call__(self) -> None:
        opt = self.optimizer
        if not self.enabled:
            opt.step()
            return
        calls = []
        for gi, group in enumerate(opt.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            ids = tuple(map(id, params))
            cached_ids, lists = self._lists.get(gi, (None, None))
            # rebuild when another subset of the group had gradients last time (its step counts
            # were regrouped) or the state was replaced (e.g. load_state_dict)
            if cached_ids != ids or opt.state.get(params[0], {}).get("exp_avg") is not lists[1][0]:
                lists = None
            if lists is None:
                states = [opt.state.get(p) for p in params]
                if not all(states) or isinstance(group["lr"], torch.Tensor) or any(
                        p.is_sparse or p.grad.is_sparse or p.is_complex() or p.dtype != params[0].dtype
                        for p in params):
                    # creates the state / an unusual group: torch's own path
                    opt.step()
                    return
                # the step counts become views of one tensor, so that counting a step is one add_
                # (torch._foreach_add_ over one-element tensors takes the slow per-tensor path,
                # ~3 us each); the kernel and torch's own step read them as before
                counts = torch.stack([s["step"].reshape(()) for s in states])
                for i, state in enumerate(states):
                    state["step"] = counts[i]
                lists = (params, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                         [s["step"] for s in states], counts)
                self._lists[gi] = (ids, lists)
            calls.append((group, lists, [p.grad for p in params]))
        for group, (params, exp_avgs, exp_avg_sqs, steps, counts), grads in calls:
            beta1, beta2 = group["betas"]
            counts.add_(1)
            self._kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                         beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                         maximize=False, grad_scale=None, found_inf=None)


class OptimizerThreads:
    """Steps the optimizer on one thread or on all of torch's, whichever measured faster.

    The CPU fused Adam opens a parallel region per parameter tensor (down to a few cache
    lines each): with OpenMP threads that sleep at once (OMP_WAIT_POLICY=PASSIVE) or cores
    busy with other work, each wake-up costs more than the update (2 threads were ~4x slower
    than 1); with threads that spin briefly (the default) 2 threads are ~25% faster. So the
    first ``n_trials`` steps of each kind are timed, alternating, and the median decides. The
    update is element-wise, so the numbers are the same either way. Off the CPU the host thread
    count does not matter (and unsynchronised timings would mean nothing): nothing is timed.
    """

    def __init__(self, n_trials: int = 8, device: torch.device = torch.device("cpu"), n_threads: Optional[int] = None):
        self.n_all = int(n_threads or torch.get_num_threads())
        self.n_trials = n_trials
        self.times: dict[int, list] = {1: [], self.n_all: []}
        self.choice: Optional[int] = 1 if self.n_all == 1 else None
        self._stepper: Optional[FusedAdamStep] = None
        if torch.device(device).type != "cpu":
            self.choice = self.n_all

    def step(self, optimizer) -> None:
        stepper = self._stepper
        if stepper is None or stepper.optimizer is not optimizer:
            stepper = self._stepper = FusedAdamStep(optimizer)
        if self.choice is not None:
            with torch_threads(self.choice):
                stepper()
            return
        n = 1 if len(self.times[1]) <= len(self.times[self.n_all]) else self.n_all
        t = time.perf_counter()
        with torch_threads(n):
            stepper()
        self.times[n].append(time.perf_counter() - t)
        if min(len(v) for v in self.times.values()) >= self.n_trials:
            self.choice = min(self.times, key=lambda k: float(np.median(self.times[k])))


class SCVI:
    """scVI (paper, Online Methods).

    >>> model = SCVI(adata, batch_key="batch", n_latent=10, seed=0)
    >>> model.train(n_epochs=100)
    >>> z = model.get_latent_representation()
    """

    module_class = VAE

    def __init__(self, adata, batch_key: Optional[str] = "batch", *, n_latent: int = 10, n_hidden: int = 128,
                 n_layers: int = 2, dropout: float = 0.1, gene_likelihood: str = "zinb",
                 dispersion: str = "gene", library: str = "latent", encode_covariates: bool = False,
                 labels_key: Optional[str] = None, layer: Optional[str] = None, seed: int = 0,
                 device: Optional[str] = None):
        self.batch_key, self.labels_key, self.layer = batch_key, labels_key, layer
        self.seed = int(seed)
        self.device = pick_device(device)
        X = self._counts(adata)
        self.genes = [str(g) for g in adata.var_names]
        if batch_key and batch_key not in adata.obs:
            raise MethodInputError(f"obs[{batch_key!r}] (batch_key) is missing; pass an existing column")
        batch_values = adata.obs[batch_key].to_numpy() if batch_key else np.zeros(adata.n_obs)
        self._obs = adata.obs
        batch_codes, self.batches = categorical_codes(batch_values, field=f"obs[{batch_key!r}]")
        if (batch_codes < 0).any():
            raise MethodInputError(f"obs[{batch_key!r}] has missing values; give every cell a batch")
        self._init_labels(adata)
        self.module_kwargs = dict(
            n_latent=n_latent, n_hidden=n_hidden, n_layers=n_layers, dropout=dropout,
            gene_likelihood=gene_likelihood, dispersion=dispersion, library=library,
            encode_covariates=encode_covariates, n_batch=len(self.batches),
        )
        if dispersion == "gene-label" and self._label_codes is not None and (self._label_codes < 0).any():
            raise MethodInputError("dispersion='gene-label' needs every cell labelled; use 'gene' or 'gene-batch'")
        lm, lv = library_prior(X, batch_codes, len(self.batches))
        torch.manual_seed(self.seed)
        self.module = self._build_module(len(self.genes), lm, lv).to(self.device)
        self._train_data = CountData(X, batch_codes, self._label_codes, self.device)
        self.history_: dict = {}
        self.is_trained_ = False

    # ------------------------------------------------------------ registration
    def _counts(self, adata):
        if adata.n_obs == 0 or adata.n_vars == 0:
            raise MethodInputError(f"adata is empty ({adata.n_obs} cells x {adata.n_vars} genes)")
        X = adata.layers[self.layer] if self.layer else adata.X
        return as_count_csr(X, f"adata.layers[{self.layer!r}]" if self.layer else "adata.X")

    def _init_labels(self, adata):
        self.labels, self._label_codes = None, None
        if self.labels_key:
            if self.labels_key not in adata.obs:
                raise MethodInputError(f"obs[{self.labels_key!r}] (labels_key) is missing")
            self._label_codes, self.labels = categorical_codes(adata.obs[self.labels_key].to_numpy())

    def _build_module(self, n_genes, lm, lv):
        n_labels = len(self.labels) if self.labels else 1
        return VAE(n_genes, n_labels=n_labels, library_log_means=lm, library_log_vars=lv, **self.module_kwargs)

    def _data(self, adata=None, allow_unknown_batches: bool = False) -> CountData:
        """Registered data, or a new AnnData checked against the model's genes and batches."""
        if adata is None:
            return self._train_data
        genes = [str(g) for g in adata.var_names]
        if genes != self.genes:
            missing = len(set(self.genes) - set(genes))
            raise MethodInputError(
                f"adata.var_names do not match the model's {len(self.genes)} genes ({missing} missing, "
                f"{len(genes)} given); subset/reorder with adata[:, model.genes]"
            )
        X = self._counts(adata)
        if self.batch_key and self.batch_key in adata.obs:
            codes, _ = categorical_codes(adata.obs[self.batch_key].to_numpy(), self.batches)
        else:
            codes = np.full(adata.n_obs, -1 if len(self.batches) > 1 else 0, dtype=np.int64)
        if (codes < 0).any() and not allow_unknown_batches:
            raise MethodInputError(
                f"obs[{self.batch_key!r}] holds batches the model was not trained on; "
                f"known batches: {self.batches} (decode such cells with transform_batch=<a known batch>)"
            )
        if (codes < 0).any() and self.module.encode_covariates:
            raise MethodInputError("a model trained with encode_covariates=True cannot encode unseen batches")
        label = None
        if self.labels_key and self.labels and self.labels_key in adata.obs:
            label, _ = categorical_codes(adata.obs[self.labels_key].to_numpy(), self.labels)
        return CountData(X, codes, label, self.device)

    # ---------------------------------------------------------------- training
    def _kl_weight(self, epoch: int, warmup: int) -> float:
        return 1.0 if warmup <= 0 else min(1.0, epoch / warmup)

    def _train_steps(self, data: CountData, rng, batch_size: int, kl_weight: float, optimizer, indices) -> float:
        """One epoch of ELBO updates; returns the mean per-cell loss."""
        total, count = 0.0, 0
        on_cpu = self.device.type == "cpu"  # off the CPU a float() per step would stall the device queue
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for mb in data.iterate(batch_size, rng, indices, drop_small_last=True):
            out = self.module.loss(mb.x, mb.nz, mb.batch, mb.label if self._uses_label_in_loss else None, kl_weight,
                                   log_x=mb.log_x, **self._loss_kwargs(mb))
            loss = out["total"].mean() + self._extra_step_loss(mb, out)
            for p in params:  # optimizer.zero_grad(set_to_none=True), without its per-call bookkeeping
                p.grad = None
            loss.backward()
            self._step_threads.step(optimizer)
            total = total + (float(loss.detach()) if on_cpu else loss.detach()) * len(mb.index)
            count += len(mb.index)
        return float(total) / max(count, 1)

    _uses_label_in_loss = False

    def _loss_kwargs(self, mb) -> dict:
        return {}

    def _extra_step_loss(self, mb, out):
        return 0.0

    def _optimizer_params(self):
        return self.module.parameters()

    def _after_epoch(self, epoch: int, rng, batch_size: int) -> None:
        return None

    def train(self, n_epochs: Optional[int] = None, *, batch_size: int = 128, lr: float = 1e-3, eps: float = 0.01,
              weight_decay: float = 1e-6, n_epochs_kl_warmup: Optional[int] = None, early_stopping: bool = False,
              validation_fraction: float = 0.0, patience: int = 20, progress_bar: bool = False,
              seed: Optional[int] = None, epoch_callback: Optional[Callable[["SCVI", int], Any]] = None):
        """Fit by stochastic variational inference (paper, Posterior inference / Hyperparameters).

        ``n_epochs_kl_warmup``: epochs over which the KL weight rises linearly from 0 to 1
        (default: half of ``n_epochs``). ``early_stopping`` watches the -ELBO of a held-out
        ``validation_fraction`` of cells, evaluated once per epoch. ``epoch_callback(model, epoch)``
        runs after each epoch, once its entries are in ``model.history_`` (outside the epoch's
        timing); a true return value stops training there.
        """
        data = self._train_data
        n_epochs = int(n_epochs or default_n_epochs(data.n_cells))
        warmup = n_epochs // 2 if n_epochs_kl_warmup is None else int(n_epochs_kl_warmup)
        seed = self.seed if seed is None else int(seed)
        torch.manual_seed(seed)
        self._train_seed = seed
        rng = np.random.default_rng(seed)
        all_idx = np.arange(data.n_cells)
        val_idx = np.array([], dtype=np.int64)
        if early_stopping and validation_fraction <= 0:
            validation_fraction = 0.1
        if validation_fraction > 0:
            perm = rng.permutation(data.n_cells)
            n_val = max(1, int(round(validation_fraction * data.n_cells)))
            val_idx, all_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        self._train_indices = all_idx
        optimizer = make_adam(self._optimizer_params(), lr, eps, weight_decay, self.device)
        self._step_threads = OptimizerThreads(device=self.device)
        self._setup_training(lr=lr, eps=eps, weight_decay=weight_decay)
        hist = {"train_loss": [], "kl_weight": [], "validation_elbo": [], "epoch_wall_s": [], "epoch_cpu_s": []}
        self.history_ = hist  # filled epoch by epoch (callbacks read it)
        # subnormal floats (e.g. tiny Adam moments of weakly used parameters) slow CPU ops by
        # orders of magnitude; flushing them to zero changes nothing measurable
        torch.set_flush_denormal(True)
        try:
            self._fit_epochs(n_epochs, data, rng, batch_size, warmup, optimizer, all_idx, val_idx,
                             early_stopping, patience, progress_bar, hist, epoch_callback)
        finally:
            torch.set_flush_denormal(False)
        self.module.eval()
        self.is_trained_ = True
        return self

    def _fit_epochs(self, n_epochs, data, rng, batch_size, warmup, optimizer, all_idx, val_idx,
                    early_stopping, patience, progress_bar, hist, epoch_callback=None):
        best, best_state, bad = math.inf, None, 0
        try:
            from tqdm.auto import tqdm
            epochs = tqdm(range(n_epochs), disable=not progress_bar, desc=type(self).__name__)
        except ImportError:  # tqdm is a dependency; keep training without it anyway
            epochs = range(n_epochs)
        for epoch in epochs:
            t_wall, t_cpu = time.perf_counter(), time.process_time()
            self.module.train()
            w = self._kl_weight(epoch, warmup)
            loss = self._train_steps(data, rng, batch_size, w, optimizer, all_idx)
            self._after_epoch(epoch, rng, batch_size)
            hist["epoch_wall_s"].append(time.perf_counter() - t_wall)
            hist["epoch_cpu_s"].append(time.process_time() - t_cpu)
            hist["train_loss"].append(loss)
            hist["kl_weight"].append(w)
            stop = False
            if len(val_idx):
                val = float(np.mean(self._elbo_per_cell(data, val_idx)))
                hist["validation_elbo"].append(val)
                if early_stopping:
                    if val < best - 1e-3:
                        best, bad = val, 0
                        best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
                    else:
                        bad += 1
                        stop = bad >= patience
            if hasattr(epochs, "set_postfix"):
                epochs.set_postfix(loss=f"{loss:.1f}")
            if epoch_callback is not None and epoch_callback(self, epoch):
                stop = True
            if stop:
                break
        if early_stopping and best_state is not None:
            self.module.load_state_dict(best_state)

    def _setup_training(self, **opt):
        return None

    # ------------------------------------------------------- posterior queries
    def _batches_of(self, data: CountData, indices=None, batch_size: int = 1024):
        self.module.eval()
        return data.iterate(batch_size, None, indices)

    @torch.no_grad()
    def get_latent_representation(self, adata=None, *, give_mean: bool = True, batch_size: int = 1024,
                                  seed: Optional[int] = None) -> np.ndarray:
        """Posterior mean of q(z|x) (or one sample with ``give_mean=False``), n_cells x n_latent."""
        data = self._data(adata, allow_unknown_batches=True)
        torch.manual_seed(self.seed if seed is None else seed)
        out = []
        for mb in self._batches_of(data, batch_size=batch_size):
            inf = self.module.inference(mb.x, mb.batch.clamp(min=0), log_x=mb.log_x)
            out.append((inf["qz_m"] if give_mean else inf["z"]).cpu())
        return torch.cat(out).numpy()

    def _batch_code(self, name) -> int:
        if str(name) not in self.batches:
            raise MethodInputError(f"transform_batch {name!r} is not a batch of the model: {self.batches}")
        return self.batches.index(str(name))

    def _batch_weights(self, transform_batch) -> list[tuple[int, float]]:
        """(batch code, weight) pairs: one batch, or all weighted by p(s) (paper's E_s)."""
        if transform_batch is None:
            return []
        if isinstance(transform_batch, str) and transform_batch == "marginal":
            counts = np.bincount(self._train_data.batch, minlength=len(self.batches)).astype(float)
            p = counts / counts.sum()
            return [(b, float(p[b])) for b in range(len(self.batches)) if p[b] > 0]
        names = [transform_batch] if isinstance(transform_batch, (str, int)) else list(transform_batch)
        return [(self._batch_code(n), 1.0 / len(names)) for n in names]

    def _scale(self, z: torch.Tensor, batch: torch.Tensor, weights, expression: str = "scale") -> torch.Tensor:
        """Expected frequencies f_w(z, s): own batch, or a weighted average over batches.
        ``expression="mean"``: the mean of the whole count law per unit library, (1 - pi) f_w
        with pi = sigmoid(f_h), the zero-inflation probability (= f_w without zero-inflation)."""
        def expected(b):
            log_scale, pi_logits = self.module.decode_scale_logits(z, b)
            if expression == "mean" and pi_logits is not None:
                return (log_scale + F.logsigmoid(-pi_logits)).exp()  # 1 - sigmoid(h) = sigmoid(-h)
            return log_scale.exp()

        if not weights:
            if (batch < 0).any():
                raise MethodInputError("cells from batches unseen in training need transform_batch")
            return expected(batch)
        acc = 0.0
        for b, w in weights:
            acc = acc + w * expected(torch.full_like(batch, b))
        return acc

    @torch.no_grad()
    def get_normalized_expression(self, adata=None, *, transform_batch=None, library_size: float | str = 1.0,
                                  n_samples: int = 1, batch_size: int = 512, seed: Optional[int] = None,
                                  return_numpy: bool = True):
        """Normalised expression f_w(z, s) (rows sum to 1) times ``library_size``.

        ``transform_batch``: None (each cell's own batch), a batch name, a list of names
        (averaged), or "marginal" (averaged with p(s), as in the paper's DE). ``library_size``
        "observed" multiplies by each cell's total count (denoised counts). n_samples = 1 uses the
        posterior mean of z; more averages that many draws of q(z|x).
        """
        data = self._data(adata, allow_unknown_batches=transform_batch is not None)
        weights = self._batch_weights(transform_batch)
        torch.manual_seed(self.seed if seed is None else seed)
        out = []
        for mb in self._batches_of(data, batch_size=batch_size):
            inf = self.module.inference(mb.x, mb.batch.clamp(min=0), n_samples=n_samples if n_samples > 1 else 0,
                                         log_x=mb.log_x)
            if n_samples > 1:
                scale = torch.stack([self._scale(inf["z"][s], mb.batch, weights) for s in range(n_samples)]).mean(0)
            else:
                scale = self._scale(inf["qz_m"], mb.batch, weights)
            if isinstance(library_size, str):
                if library_size != "observed":
                    raise MethodInputError("library_size must be a number or 'observed'")
                scale = scale * mb.x.sum(-1, keepdim=True)
            else:
                scale = scale * float(library_size)
            out.append(scale.cpu())
        arr = torch.cat(out).numpy()
        if return_numpy:
            return arr
        return pd.DataFrame(arr, columns=self.genes)

    def get_denoised_expression(self, adata=None, *, transform_batch="marginal", **kw) -> np.ndarray:
        """Batch-corrected expression on the count scale: f_w(z, s) averaged over batches with p(s)
        (or one chosen batch) times each cell's observed library size."""
        return self.get_normalized_expression(adata, transform_batch=transform_batch, library_size="observed", **kw)

    def _elbo_per_cell(self, data: CountData, indices=None, batch_size: int = 512) -> np.ndarray:
        was_training = self.module.training
        self.module.eval()
        out = []
        for mb in data.iterate(batch_size, None, indices):
            out.append(self.module.elbo_terms(mb.x, mb.nz, mb.batch, mb.label if self._uses_label_in_loss else None,
                                               log_x=mb.log_x)["elbo"].cpu())
        self.module.train(was_training)
        return torch.cat(out).numpy()

    @torch.no_grad()
    def get_elbo(self, adata=None, *, seed: Optional[int] = None) -> float:
        """Mean negative ELBO per cell (constants included, KL weight 1): lower is better."""
        torch.manual_seed(self.seed if seed is None else seed)
        return float(np.mean(self._elbo_per_cell(self._data(adata))))

    @torch.no_grad()
    def get_reconstruction_error(self, adata=None, *, seed: Optional[int] = None) -> float:
        """Mean -log p(x | z, l, s) per cell, one posterior draw, constants included."""
        torch.manual_seed(self.seed if seed is None else seed)
        data = self._data(adata)
        self.module.eval()
        vals = [self.module.elbo_terms(mb.x, mb.nz, mb.batch, mb.label if self._uses_label_in_loss else None,
                                        log_x=mb.log_x)["recon"]
                for mb in data.iterate(512)]
        return float(torch.cat(vals).mean())

    @torch.no_grad()
    def get_marginal_ll(self, adata=None, *, n_mc_samples: int = 100, batch_size: int = 64,
                        seed: Optional[int] = None) -> float:
        """Mean importance-sampled log p(x) per cell (higher is better), q(z|x) q(l|x) proposal."""
        if type(self.module) is not VAE:
            raise NotImplementedError("the marginal log-likelihood is implemented for scVI; use get_elbo for scANVI")
        torch.manual_seed(self.seed if seed is None else seed)
        data = self._data(adata)
        self.module.eval()
        vals = [self.module.marginal_ll(mb.x, mb.nz, mb.batch, None, n_mc_samples, log_x=mb.log_x).cpu()
                for mb in data.iterate(batch_size)]
        return float(torch.cat(vals).mean())

    # ---------------------------------------------------------- differential expression
    def differential_expression(self, adata=None, *, groupby: str, group1, group2=None, n_samples: int = 5000,
                                mode: str = "cells", compare: str = "population", delta: float | str = DEFAULT_DELTA,
                                n_draws: int = 200, max_population: int = 2000,
                                seed: Optional[int] = None, expression: Optional[str] = None) -> pd.DataFrame:
        """Bayes factors for group1 vs group2 (or vs the rest), paper's Bayesian DE (see de.py).

        mode "cells": random cells, z ~ q(z|x), batch marginalised with p(s) (scVI); "labels":
        z ~ p(z|u, c) p(u) (scANVI). compare "pairs" (the paper): p(h_a > h_b) over ``n_samples``
        random pairs, score |log K|; "population": ``n_draws`` bootstrap populations per group (as
        many draws as the group has cells, at most ``max_population``), score = log K of
        |LFC of the population means| > ``delta`` (log2; default "estimate": scvi-tools'
        estimate_delta rule on all genes' LFCs; a number fixes it, e.g. 0.25, scvi-tools' default).
        ``expression``: what is compared, "scale" = f_w(z, s) (the paper, and scvi-tools) or "mean" =
        (1 - pi) f_w, the ZINB mean per unit library; the zero-inflation pi can absorb part of a
        low-expressed gene's difference, so "mean" shrinks those LFCs less (same as "scale" for NB
        and Poisson). None: "mean" for compare="population", "scale" for the paper's "pairs". The
        population defaults were chosen by a pre-registered replication on a bulk RNA-seq reference
        (de.py's docstring; DEVELOPERS.md).
        """
        data = self._data(adata)
        obs = adata.obs if adata is not None else self._obs
        if groupby not in obs:
            raise MethodInputError(f"obs[{groupby!r}] (groupby / de_key) is missing")
        if compare not in ("pairs", "population"):
            raise MethodInputError(f"compare must be 'pairs' (the paper) or 'population', got {compare!r}")
        try:  # refuse a bad threshold or expression before minutes of sampling
            if compare == "population":
                check_delta(delta)
            expression = resolve_expression(expression, compare)
        except ValueError as exc:
            raise MethodInputError(str(exc)) from None
        values = obs[groupby].astype(object).to_numpy()
        mask1 = values == group1
        mask2 = ~mask1 & pd.notna(values) if group2 is None else values == group2
        for name, m in ((group1, mask1), (group2 if group2 is not None else "rest", mask2)):
            if not m.any():
                raise MethodInputError(f"DE group {name!r} has no cells in obs[{groupby!r}]")
        seed = self.seed if seed is None else seed
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        weights = self._batch_weights("marginal")
        self.module.eval()
        draw_a, draw_b = self._cell_drawer(data, np.flatnonzero(mask1), rng, weights, expression), \
            self._cell_drawer(data, np.flatnonzero(mask2), rng, weights, expression)
        if mode == "labels":
            draw_a, draw_b = self._label_drawers(group1, group2, weights, rng, expression)
        elif mode != "cells":
            raise MethodInputError(f"mode must be 'cells' or 'labels', got {mode!r}")
        fracs = (expression_fraction(data.X, mask1), expression_fraction(data.X, mask2),
                 str(group1), "rest" if group2 is None else str(group2))
        if compare == "pairs":
            res = monte_carlo_compare(draw_a, draw_b, n_samples)
            return de_table(self.genes, res["proba"], res["lfc_mean"], res["lfc_median"], *fracs)
        return self._population_de(draw_a, draw_b, (int(mask1.sum()), int(mask2.sum())), n_draws,
                                   max_population, delta, seed, fracs)

    def _population_de(self, draw_a, draw_b, sizes, n_draws, max_population, delta, seed, fracs):
        """compare="population": LFC draws of the two population means -> direction and change K."""
        n_a, n_b = (min(int(n), int(max_population)) for n in sizes)
        lfc = population_lfc_draws(draw_a, draw_b, n_a, n_b, int(n_draws))
        lfc_mean, lfc_sd = lfc.mean(0), lfc.std(0, ddof=1)
        delta = resolve_delta(delta, lfc_mean, seed=seed)
        proba_de, log_k = change_log_k(lfc_mean, lfc_sd, delta)
        change = {"proba_de": proba_de, "log_k": log_k, "lfc_sd": lfc_sd, "delta": delta}
        return de_table(self.genes, (lfc > 0).mean(0), lfc_mean, np.median(lfc, 0), *fracs, change=change)

    def _cell_drawer(self, data: CountData, cells: np.ndarray, rng, weights, expression: str = "scale"):
        def draw(n):
            idx = np.sort(rng.choice(cells, size=n, replace=True))
            mb = data.minibatch(idx)
            inf = self.module.inference(mb.x, mb.batch.clamp(min=0), log_x=mb.log_x)
            return self._scale(inf["z"], mb.batch, weights, expression)
        return draw

    def _label_drawers(self, group1, group2, weights, rng, expression: str = "scale"):
        raise MethodInputError("mode='labels' needs a scANVI model")

    # -------------------------------------------------------------- save / load
    def _registry(self) -> dict:
        return {"format_version": FORMAT_VERSION, "class": type(self).__name__, "genes": self.genes,
                "batches": self.batches, "labels": self.labels, "batch_key": self.batch_key,
                "labels_key": self.labels_key, "layer": self.layer, "seed": self.seed,
                "module_kwargs": self.module_kwargs, "history": self.history_}

    def save(self, path, overwrite: bool = False) -> Path:
        """Write weights (model.pt) and the registry of genes/batches/labels (registry.json)."""
        path = Path(path)
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise FileExistsError(f"{path} exists and is not empty; pass overwrite=True or another folder")
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.module.state_dict(), path / "model.pt")
        (path / "registry.json").write_text(json.dumps(self._registry(), indent=1, default=str))
        return path

    @classmethod
    def load(cls, path, adata, device: Optional[str] = None):
        """Rebuild a saved model for ``adata`` (which must have the saved genes, in order)."""
        path = Path(path)
        reg = json.loads((path / "registry.json").read_text())
        if reg["class"] != cls.__name__:
            raise MethodInputError(f"{path} holds a {reg['class']} model; load it with {reg['class']}.load")
        genes = [str(g) for g in adata.var_names]
        if genes != reg["genes"]:
            raise MethodInputError(
                f"adata.var_names do not match the saved model's {len(reg['genes'])} genes; "
                "subset/reorder adata with adata[:, genes from registry.json]"
            )
        obj = cls.__new__(cls)
        obj._restore(reg, adata, device)
        state = torch.load(path / "model.pt", map_location=obj.device, weights_only=True)
        obj.module.load_state_dict(state)
        obj.module.eval()
        obj.is_trained_ = True
        return obj

    def _restore(self, reg: dict, adata, device):
        self.batch_key, self.labels_key, self.layer = reg["batch_key"], reg["labels_key"], reg["layer"]
        self.seed, self.device = reg["seed"], pick_device(device)
        self.genes, self.batches, self.labels = reg["genes"], reg["batches"], reg["labels"]
        self.module_kwargs = reg["module_kwargs"]
        self.history_ = reg.get("history", {})
        X = self._counts(adata)
        batch_codes, _ = categorical_codes(adata.obs[self.batch_key].to_numpy() if self.batch_key else
                                           np.repeat(self.batches[0], adata.n_obs), self.batches)
        label = None
        if self.labels_key and self.labels and self.labels_key in adata.obs:
            label, _ = categorical_codes(adata.obs[self.labels_key].to_numpy(), self.labels)
        self._label_codes = label
        self._obs = adata.obs
        self.module = self._build_module(len(self.genes), None, None).to(self.device)
        self._train_data = CountData(X, np.maximum(batch_codes, 0), label, self.device)


#: torch thread counts for which SCANVI(overlap="auto") splits the CPU step over two threads
AUTO_OVERLAP_THREADS = (2, 4)


def check_overlap(value):
    """SCANVI's ``overlap``: "auto" (see ``AUTO_OVERLAP_THREADS``), True or False."""
    if value == "auto" or isinstance(value, bool):
        return value
    raise MethodInputError(f"overlap must be 'auto', True or False, got {value!r}")


#: what the classifier reads during training: a draw of q(z|x) (the paper) or its mean (scvi-tools)
CLASSIFIER_INPUTS = ("sample", "mean")

#: SCANVI's "auto" (labelled_elbo, classifier_input): scvi-tools' two choices where they were
#: measured to help, joint training (Algorithm 1, scvi-tools' scheme) transferring labels to a batch
#: without any (the paper's choices cost 5 points of accuracy on the simulator split over 8 seeds,
#: ~0 on the pbmc3k split); the paper's choices everywhere else: spreading seed labels within the
#: data (pbmc_facs: the marginal bound cost 1-4 points, the posterior mean 4) and under Algorithm 2
#: (alternating, transfer: scvi-tools' choices collapsed the branch types). DEVELOPERS.md has the runs.
SCVITOOLS_CHOICES, PAPER_CHOICES = ("marginal", "mean"), ("observed", "sample")


def auto_label_choices(scheme: str, transfer: bool) -> tuple[str, str]:
    """(labelled_elbo, classifier_input) that SCANVI's "auto" resolves to (see above)."""
    return SCVITOOLS_CHOICES if scheme == "joint" and transfer else PAPER_CHOICES


def transfers_labels(batches, labelled) -> bool:
    """True when there are several batches and one has no labelled cell: labels are transferred
    to it (the paper's transfer setting), not spread from labelled cells within every batch."""
    batches, labelled = np.asarray(batches).astype(str), np.asarray(labelled, dtype=bool)
    n_batches = len(set(batches))
    return n_batches > 1 and len(set(batches[labelled])) < n_batches


class SCANVI(SCVI):
    """scANVI (paper, Online Methods; Supplementary Notes 2-4).

    ``scheme``: "alternating" (Algorithm 2, the paper's default) or "joint" (Algorithm 1).
    Labels: obs[labels_key], NaN = unlabelled. ``hierarchy`` (fine -> coarse dict) switches on
    the hierarchical classifier; ``coarse_labels_key`` gives group labels for cells without a
    fine label.

    ``labelled_elbo``: "observed" (the paper: labelled cells bounded with their class, L) or
    "marginal" (scvi-tools: every cell bounded with c marginalised, U); ``classifier_input``:
    "sample" (the paper: the classifier learns on a draw of q(z|x)) or "mean" (scvi-tools). "auto"
    (default) takes scvi-tools' two choices for joint training when some batch has no labelled cell,
    the paper's otherwise (``auto_label_choices``, measured); the attributes hold the resolved values.

    ``overlap``: split each CPU training step over two threads (``overlap.py``): True, False, or
    "auto" (on for CPU training with 2 to 4 torch threads, where it was measured or expected to
    pay: at 2 threads a step is 1.15-1.2x faster in one process; with many threads the second thread's share, ~11 ms
    of one-thread work a step, would bound the step). Same gradients up to float rounding; a seed
    repeats exactly either way, but the two give different numbers (their random draws differ).
    """

    module_class = SCANVAE
    _uses_label_in_loss = True

    def __init__(self, adata, batch_key: Optional[str] = "batch", labels_key: str = "cell_type", *,
                 scheme: str = "alternating", classifier_layers: int = 2, classifier_hidden: int = 256,
                 classifier_epochs: int = 1, classification_ratio: float = 50.0, classifier_lr: float = 5e-3,
                 hierarchy: Optional[dict] = None, coarse_labels_key: Optional[str] = None,
                 labelled_elbo: str = "auto", classifier_input: str = "auto", overlap="auto", **kwargs):
        if scheme not in ("alternating", "joint"):
            raise MethodInputError(f"scheme must be 'alternating' (Algorithm 2) or 'joint' (Algorithm 1), got {scheme!r}")
        if labelled_elbo not in ("auto",) + LABELLED_ELBOS:
            raise MethodInputError(f"labelled_elbo must be 'auto' or one of {LABELLED_ELBOS}, got {labelled_elbo!r}")
        if classifier_input not in ("auto",) + CLASSIFIER_INPUTS:
            raise MethodInputError(f"classifier_input must be 'auto' or one of {CLASSIFIER_INPUTS}, "
                                   f"got {classifier_input!r}")
        self.scheme = scheme
        self.labelled_elbo, self.classifier_input = labelled_elbo, classifier_input
        self.overlap = check_overlap(overlap)
        self.classifier_layers, self.classifier_hidden = int(classifier_layers), int(classifier_hidden)
        self.classifier_epochs, self.classification_ratio = int(classifier_epochs), float(classification_ratio)
        self.classifier_lr = float(classifier_lr)
        self.hierarchy = None if hierarchy is None else {str(k): str(v) for k, v in dict(hierarchy).items()}
        self.coarse_labels_key = coarse_labels_key
        self._coarse_values = None
        if coarse_labels_key is not None:
            if coarse_labels_key not in adata.obs:
                raise MethodInputError(f"obs[{coarse_labels_key!r}] (coarse_labels_key) is missing")
            self._coarse_values = adata.obs[coarse_labels_key].to_numpy()
        self._obs = adata.obs
        super().__init__(adata, batch_key, labels_key=labels_key, **kwargs)

    def _init_labels(self, adata):
        if self.labels_key not in adata.obs:
            raise MethodInputError(f"obs[{self.labels_key!r}] (labels_key) is missing; pass the label column")
        codes, cats = categorical_codes(adata.obs[self.labels_key].to_numpy())
        if self.hierarchy is not None:
            # every fine class of the hierarchy is a class, even when no cell shows it
            extra = [c for c in self.hierarchy if c not in cats]
            cats = sorted(set(cats) | set(extra))
            codes, cats = categorical_codes(adata.obs[self.labels_key].to_numpy(), cats)
        if len(cats) < 2:
            raise MethodInputError(
                f"obs[{self.labels_key!r}] has {len(cats)} label class(es) {cats}; scANVI needs at least two "
                "(label more cell types, or use scVI)"
            )
        if (codes >= 0).sum() == 0 and self._coarse_values is None:
            raise MethodInputError(f"obs[{self.labels_key!r}] has no labelled cell; label some cells or use scVI")
        self.labels, self._label_codes = cats, codes
        self._resolve_auto_choices(adata, codes >= 0)
        self._parent, self.coarse_labels = None, None
        self._coarse_codes = None
        if self.hierarchy is not None:
            self._parent, self.coarse_labels = parent_index(cats, self.hierarchy)
            if self._coarse_values is not None:
                cc, _ = categorical_codes(self._coarse_values, self.coarse_labels)
                self._coarse_codes = cc

    def _resolve_auto_choices(self, adata, labelled):
        """labelled_elbo / classifier_input "auto" -> ``auto_label_choices`` for this scheme and data."""
        if self._coarse_values is not None:  # a group label is a label too
            labelled = labelled | pd.notna(self._coarse_values)
        batches = adata.obs[self.batch_key].to_numpy() if self.batch_key else np.zeros(adata.n_obs)
        auto = auto_label_choices(self.scheme, transfers_labels(batches, labelled))
        if self.labelled_elbo == "auto":
            self.labelled_elbo = auto[0]
        if self.classifier_input == "auto":
            self.classifier_input = auto[1]

    def _build_module(self, n_genes, lm, lv):
        kw = dict(self.module_kwargs)
        kw.pop("n_labels", None)
        parent = None if self._parent is None else torch.as_tensor(self._parent)
        return SCANVAE(n_genes, len(self.labels), classifier_layers=self.classifier_layers,
                       labelled_elbo=self.labelled_elbo,
                       classifier_hidden=self.classifier_hidden, hierarchy_parent=parent,
                       n_coarse=0 if self.coarse_labels is None else len(self.coarse_labels),
                       library_log_means=lm, library_log_vars=lv, **kw)

    @classmethod
    def from_scvi(cls, scvi_model: SCVI, adata, labels_key: str = "cell_type", **kwargs) -> "SCANVI":
        """scANVI initialised with a trained scVI's encoders, decoder and dispersion."""
        if list(map(str, adata.var_names)) != scvi_model.genes:
            raise MethodInputError("adata.var_names must equal the scVI model's genes")
        kwargs = {**{k: v for k, v in scvi_model.module_kwargs.items() if k != "n_batch"}, **kwargs}
        model = cls(adata, scvi_model.batch_key, labels_key, seed=scvi_model.seed, device=str(scvi_model.device),
                    layer=scvi_model.layer, **kwargs)
        if model.batches != scvi_model.batches:
            raise MethodInputError("adata batches differ from those the scVI model was trained on")
        state = {k: v for k, v in scvi_model.module.state_dict().items()}
        missing, unexpected = model.module.load_state_dict(state, strict=False)
        if unexpected:
            raise MethodInputError(f"scVI weights do not fit this scANVI: {unexpected}")
        return model

    # --------------------------------------------------------------- training
    def _optimizer_params(self):
        if self.scheme == "alternating":
            return self.module.non_classifier_parameters()
        return self.module.parameters()

    def _setup_training(self, lr, eps, weight_decay):
        data = self._train_data
        train_idx = self._train_indices
        lab = data.label[train_idx] >= 0
        if self._coarse_codes is not None:
            lab |= self._coarse_codes[train_idx] >= 0
        self._labelled_idx = train_idx[lab]
        self._label_cursor, self._label_perm = 0, None
        self._cls_rng = np.random.default_rng(self.seed + 1)
        self._batch_size = 128
        if self.scheme == "alternating":
            # eps = 0.01 suits the ELBO's large gradients; the cross-entropy's are O(0.01-1), where
            # such an eps would shrink every step, so the classifier phase uses Adam's usual eps
            self._cls_optimizer = make_adam(self.module.classifier_parameters(), self.classifier_lr, 1e-8,
                                            weight_decay, self.device)

    def _coarse_tensor(self, idx):
        if self._coarse_codes is None:
            return None
        return torch.from_numpy(self._coarse_codes[idx]).to(self.device)

    def _next_labelled(self, n: Optional[int] = None) -> np.ndarray:
        """Cycle through the labelled cells in a fresh random order (one labelled minibatch per step;
        ``n`` cells, by default the training batch size or every labelled cell when fewer)."""
        n = min(self._batch_size, len(self._labelled_idx)) if n is None else n
        out = []
        while sum(len(o) for o in out) < n and len(self._labelled_idx):
            if self._label_perm is None or self._label_cursor >= len(self._label_perm):
                self._label_perm = self._labelled_idx[self._cls_rng.permutation(len(self._labelled_idx))]
                self._label_cursor = 0
            take = self._label_perm[self._label_cursor:self._label_cursor + n - sum(len(o) for o in out)]
            self._label_cursor += len(take)
            out.append(take)
        return np.sort(np.concatenate(out)) if out else np.array([], dtype=np.int64)

    def _loss_kwargs(self, mb) -> dict:
        """The minibatch's labelled / unlabelled rows, from the host's labels (on a GPU the module
        would find them with nonzero, a device-to-host wait every step; same rows on the CPU), and
        the stream the z-only terms draw from (None: torch's default generator)."""
        labelled = self._train_data.label[mb.index] >= 0
        rows = to_device_async(torch.from_numpy(np.concatenate([np.flatnonzero(labelled), np.flatnonzero(~labelled)])),
                               self.device)
        n_lab = int(labelled.sum())
        return {"split": (rows[:n_lab], rows[n_lab:]), "latent_stream": self._z_streams[1] if self._z_streams else None}

    def _extra_step_loss(self, mb, out):
        """Algorithm 1: alpha x C on a labelled minibatch drawn alongside every ELBO step."""
        if self.scheme != "joint" or len(self._labelled_idx) == 0:
            return 0.0
        idx = self._next_labelled()
        with random_stream(self._z_streams[0] if self._z_streams else None):
            return self._classification_term(idx)

    def _classification_term(self, idx):
        """alpha x C on the labelled cells ``idx``.

        The encoder normalises with this minibatch's statistics but leaves its running ones
        alone (``encode_z``): the labelled cells may come from a few batches only (label
        transfer), and moving the encoder's running statistics with them would skew every later
        inference. The classifier's running statistics follow its inputs, labelled and not."""
        lmb = self._train_data.minibatch(idx, counts=False)  # the encoder reads log1p(x) only
        z = self.module.encode_z(lmb.x, lmb.batch, log_x=lmb.log_x, mean=self.classifier_input == "mean")
        # without group-only labels every drawn cell has a fine label: no mask (no device-to-host wait)
        return self.classification_ratio * self.module.classification_loss(
            z, lmb.label, self._coarse_tensor(idx), all_labelled=self._coarse_codes is None)

    # ----------------------------------------------- the two-thread training step (CPU)
    #: True: the one-thread step also draws the z-only terms from the two-thread step's streams
    #: (then both steps give the same gradients up to float rounding; the tests compare them)
    _z_streams_on_one_thread = False
    _z_streams = None
    _second_thread = None

    def _uses_second_thread(self) -> bool:
        on_cpu, threads = self.device.type == "cpu", torch.get_num_threads()
        if self.overlap == "auto":
            return on_cpu and AUTO_OVERLAP_THREADS[0] <= threads <= AUTO_OVERLAP_THREADS[1]
        if self.overlap and not on_cpu:
            raise MethodInputError(f"overlap=True is for CPU training; this model is on {self.device} (use 'auto')")
        if self.overlap and threads < 2:
            raise MethodInputError("overlap=True needs at least 2 torch threads (torch.set_num_threads(2)), "
                                   "or overlap='auto'")
        return bool(self.overlap)

    def _fit_epochs(self, *args, **kwargs):
        self._second_thread, self._z_streams = None, None
        second = self._uses_second_thread()
        if second or self._z_streams_on_one_thread:
            # the labelled step and the (cell, class) terms each draw from a stream of their own,
            # seeded from the training seed: same seed, same numbers, whatever the thread timing
            seeds = np.random.SeedSequence([self._train_seed, 2]).generate_state(2, np.uint64) >> np.uint64(1)
            self._z_streams = tuple(torch.Generator().manual_seed(int(s)) for s in seeds)
        if second:
            self._second_thread = SecondThread(torch.get_num_threads())
            # Adam runs on the main thread's share
            self._second_step_threads = OptimizerThreads(device=self.device, n_threads=self._second_thread.main_threads)
        try:
            return super()._fit_epochs(*args, **kwargs)
        finally:
            self._second_thread, self._z_streams = None, None

    def _two_thread_steps(self, data, rng, batch_size, kl_weight, optimizer, indices) -> float:
        """One epoch of the steps ``_train_steps`` makes (``loss`` and Algorithm 1's term), each
        step split between this thread and a second one (``overlap.py``).

        Second thread, in order: the labelled classification term (it reads the parameters only,
        so it starts with the step; the classifier's gradients are set there, the shared
        encoder's returned), then ``latent_class_loss`` from a detached z (its backward gives z's
        gradient and the gradients of the parameters only it uses), then the decoder heads'
        weight gradient, then the next minibatch.
        This thread: q(z|x) and q(l|x); the terms that read x (likelihood, KL(l), entropy of
        q(z|x)) and their backward down to the encoder's outputs; then the encoder's backward
        with z's gradient from both halves; Adam. Same bound, same gradients as the one-thread
        step up to float rounding (tested), with the z-only terms on their own random streams."""
        second, module = self._second_thread, self.module
        chunks = data.index_batches(batch_size, rng, indices, drop_small_last=True)
        heads = []  # the decoder heads' weight gradient, a GEMM as large as the encoder's first layer
        module.defer_heads_grads = lambda h, grads: heads.append(second.submit(self._heads_grads, h, grads))
        try:
            return self._two_thread_epoch(chunks, heads, kl_weight, optimizer)
        finally:
            module.defer_heads_grads = None

    def _two_thread_epoch(self, chunks, heads, kl_weight, optimizer) -> float:
        second, module, data = self._second_thread, self.module, self._train_data
        params = [p for group in optimizer.param_groups for p in group["params"]]
        joint = self.scheme == "joint" and len(self._labelled_idx) > 0
        shared = [p for p in module.z_encoder_parameters() if p.requires_grad] if joint else []
        total, count = 0.0, 0
        upcoming = second.submit(data.minibatch, chunks[0]) if chunks else None
        for i in range(len(chunks)):
            mb = upcoming.result()
            kw = self._loss_kwargs(mb)
            for p in params:
                p.grad = None
            labelled = (second.submit(self._labelled_half, self._next_labelled(), shared, stream=self._z_streams[0])
                        if joint else None)
            inf = module.inference(mb.x, mb.batch, log_x=mb.log_x)
            # the encoder's outputs as leaves: the decoder's backward runs while the second
            # thread works, the encoder's once z's gradient from both halves is known
            cut = {k: v.detach().requires_grad_() for k, v in inf.items() if v.requires_grad}
            z_in = inf["z"].detach().requires_grad_()
            latent = second.submit(self._latent_half, z_in, mb.label, kw["split"], kl_weight, stream=kw["latent_stream"])
            inf_x = {**inf, **cut}
            gen = module.generative(inf_x["z"], inf_x["log_library"], mb.batch, mb.label)
            x_half = (module.reconstruction(mb.x, mb.nz, gen) - gaussian_entropy(inf_x["qz_v"])
                      + kl_weight * module.kl_library(inf_x, mb.batch)).mean()
            x_half.backward()
            if i + 1 < len(chunks):  # the next minibatch, built while this thread finishes the step
                upcoming = second.submit(data.minibatch, chunks[i + 1])
            loss = x_half.detach() + latent.result()
            cut["z"].grad.add_(z_in.grad)
            outputs = [k for k, v in cut.items() if v.grad is not None]
            torch.autograd.backward([inf[k] for k in outputs], [cut[k].grad for k in outputs])
            if labelled is not None:
                c_loss, grads = labelled.result()
                for p, g in zip(shared, grads):
                    if g is not None:
                        p.grad.add_(g)
                loss = loss + c_loss
            while heads:
                heads.pop().result()
            self._second_step_threads.step(optimizer)
            total += float(loss) * len(mb.index)
            count += len(mb.index)
        return total / max(count, 1)

    def _labelled_half(self, idx, shared):
        """Algorithm 1's term on the second thread: the classifier's gradients are set there (no
        other thread touches them), the shared encoder's are returned for the main thread."""
        c = self._classification_term(idx)
        own = [p for p in self.module.classifier_parameters() if p.requires_grad]
        grads = torch.autograd.grad(c, shared + own, allow_unused=True)
        for p, g in zip(own, grads[len(shared):]):
            if g is not None:
                p.grad = g if p.grad is None else p.grad.add_(g)
        return c.detach(), grads[:len(shared)]

    def _latent_half(self, z, label, split, kl_weight):
        z_pairs, kl_uc = self.module.latent_class_loss(z, label, split)
        loss = (z_pairs + kl_weight * kl_uc).mean()
        loss.backward()
        return loss.detach()

    @torch.no_grad()
    def _heads_grads(self, h, grads):
        heads = self.module.px_heads
        heads.weight.grad, heads.bias.grad = RowBlockLinear.weight_grads(h, grads, heads.weight)

    def _train_steps(self, data, rng, batch_size, kl_weight, optimizer, indices):
        self._batch_size = batch_size
        if self.scheme == "alternating":  # (theta, phi) <- dJ: the classifier is held fixed
            for p in self.module.classifier_parameters():
                p.requires_grad_(False)
        try:
            if self._second_thread is not None:
                with self._second_thread:
                    return self._two_thread_steps(data, rng, batch_size, kl_weight, optimizer, indices)
            return super()._train_steps(data, rng, batch_size, kl_weight, optimizer, indices)
        finally:
            for p in self.module.classifier_parameters():
                p.requires_grad_(True)

    def _after_epoch(self, epoch, rng, batch_size):
        """Algorithm 2: c epochs of classifier updates on the labelled cells, encoder fixed."""
        if self.scheme != "alternating" or len(self._labelled_idx) == 0 or self.classifier_epochs <= 0:
            return
        idx = self._labelled_idx
        self.module.eval()
        with torch.no_grad():
            qm, qv = [], []
            for mb in self._train_data.iterate(1024, None, idx):
                inf = self.module.inference(mb.x, mb.batch, log_x=mb.log_x)
                qm.append(inf["qz_m"]), qv.append(inf["qz_v"])
            qm, qv = torch.cat(qm), torch.cat(qv)
        labels = torch.from_numpy(self._train_data.label[idx]).to(self.device)
        coarse = self._coarse_tensor(idx)
        self.module.classifier.train()
        for _ in range(self.classifier_epochs):
            perm = torch.from_numpy(self._cls_rng.permutation(len(idx))).to(self.device)
            for start in range(0, len(idx), batch_size):
                sel = perm[start:start + batch_size]
                if len(sel) < 2 and start > 0:
                    break
                z = qm[sel] if self.classifier_input == "mean" else qm[sel] + qv[sel].sqrt() * torch.randn_like(qm[sel])
                loss = self.module.classification_loss(z, labels[sel], None if coarse is None else coarse[sel])
                self._cls_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self._cls_optimizer.step()
        self.module.train()

    # ------------------------------------------------------------ predictions
    @torch.no_grad()
    def _log_probs(self, adata=None, level: str = "fine") -> torch.Tensor:
        data = self._data(adata, allow_unknown_batches=True)
        self.module.eval()
        out = []
        for mb in data.iterate(1024):
            z = self.module.inference(mb.x, mb.batch.clamp(min=0), log_x=mb.log_x)["qz_m"]
            if level == "coarse":
                out.append(self.module.classifier.level_log_probs(z)[1].cpu())
            else:
                out.append(self.module.classifier.log_probs(z).cpu())
        return torch.cat(out)

    def predict_proba(self, adata=None, level: str = "fine") -> pd.DataFrame:
        """q(c | z) at the posterior mean of z; columns = classes (``level`` "coarse" with a hierarchy)."""
        if level == "coarse" and self.coarse_labels is None:
            raise MethodInputError("level='coarse' needs a model trained with a hierarchy")
        cols = self.coarse_labels if level == "coarse" else self.labels
        index = (adata.obs_names if adata is not None else self._obs.index)
        return pd.DataFrame(self._log_probs(adata, level).exp().numpy(), columns=cols, index=index)

    def predict(self, adata=None, level: str = "fine") -> np.ndarray:
        """Most probable class per cell (array of label strings)."""
        proba = self.predict_proba(adata, level)
        return proba.columns.to_numpy()[proba.to_numpy().argmax(1)].astype(object)

    def predict_levels(self, adata=None) -> dict:
        """Predictions at every level of the hierarchy: {"fine": labels, "coarse": labels}."""
        out = {"fine": self.predict(adata)}
        if self.coarse_labels is not None:
            out["coarse"] = self.predict(adata, level="coarse")
        return out

    def _label_drawers(self, group1, group2, weights, rng, expression: str = "scale"):
        """scANVI DE conditioned on labels: z ~ p(z|u, c), u ~ p(u) (paper, Bayesian DE)."""
        for g in [group1] + ([] if group2 is None else [group2]):
            if str(g) not in self.labels:
                raise MethodInputError(f"DE group {g!r} is not a label class of the model: {self.labels}")
        c1 = self.labels.index(str(group1))
        rest = [c for c in range(len(self.labels)) if c != c1]
        counts = np.bincount(np.maximum(self._train_data.label, 0)[self._train_data.label >= 0], minlength=len(self.labels))
        p_rest = counts[rest].astype(float) + 1e-12
        p_rest /= p_rest.sum()

        def draw_class(c):
            def draw(n):
                z = self.module.sample_z_given_class(c, n)
                return self._scale(z, torch.zeros(n, dtype=torch.long, device=z.device), weights, expression)
            return draw

        def draw_rest(n):
            cs = rng.choice(rest, size=n, p=p_rest)
            return torch.cat([draw_class(c)(int((cs == c).sum())) for c in rest if (cs == c).any()])

        return draw_class(c1), (draw_class(self.labels.index(str(group2))) if group2 is not None else draw_rest)

    def _registry(self) -> dict:
        reg = super()._registry()
        reg.update(scheme=self.scheme, classifier_layers=self.classifier_layers,
                   classifier_hidden=self.classifier_hidden, classifier_epochs=self.classifier_epochs,
                   classification_ratio=self.classification_ratio, classifier_lr=self.classifier_lr,
                   hierarchy=self.hierarchy, coarse_labels_key=self.coarse_labels_key,
                   labelled_elbo=self.labelled_elbo, classifier_input=self.classifier_input, overlap=self.overlap)
        return reg

    def _restore(self, reg, adata, device):
        for k in ("scheme", "classifier_layers", "classifier_hidden", "classifier_epochs",
                  "classification_ratio", "classifier_lr", "hierarchy", "coarse_labels_key"):
            setattr(self, k, reg[k])
        # models saved before these options existed were trained with the paper's choices
        self.labelled_elbo = reg.get("labelled_elbo", "observed")
        self.classifier_input = reg.get("classifier_input", "sample")
        self.overlap = check_overlap(reg.get("overlap", "auto"))
        self._parent, self.coarse_labels, self._coarse_codes = None, None, None
        if self.hierarchy is not None:
            self._parent, self.coarse_labels = parent_index(reg["labels"], self.hierarchy)
        super()._restore(reg, adata, device)
