"""Gaussian-process surrogates of the BO optimizer: input encodings, model construction and fitting.

All models are BoTorch ``SingleTaskGP`` / ``MixedSingleTaskGP`` instances (one independent GP per outcome,
combined in a ``ModelListGP``) with a ``Standardize`` outcome transform, fitted by maximising the exact
marginal likelihood with :func:`botorch.fit.fit_gpytorch_mll`. Everything runs in float64.

Encodings of an ``(n, 28)`` gene batch (see :data:`ENCODINGS`):

- ``"ordinal"`` -- ``(n, 28)`` floats in ``[0, 1]``: each gene's *real* value (expansion 1/4/6, kernel 3/5,
  layers, SE) min-max scaled; RBF kernel with ARD and BoTorch's dimension-scaled lengthscale prior.
- ``"onehot"`` -- ``(n, 71)`` one-hot indicators of every gene value; same RBF kernel.
- ``"categorical"`` -- ``(n, 28)`` gene indices; ``CategoricalKernel`` (ARD Hamming/overlap kernel).
- ``"mixed"`` -- ``(n, 56)``: the ordinal features plus the gene indices, ``MixedSingleTaskGP``'s
  sum + product of an RBF kernel on the former and a ``CategoricalKernel`` on the latter.

``experiments/perf/bo_speed.py --encodings`` measures their held-out predictive quality; ``"ordinal"`` is the
default because it predicted best there (numbers in ``optimizers/bo/README.md``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from botorch.exceptions import ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import MixedSingleTaskGP, ModelListGP, SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms.outcome import Standardize
from botorch.posteriors.gpytorch import GPyTorchPosterior
from gpytorch.constraints import GreaterThan
from gpytorch.distributions import MultitaskMultivariateNormal, MultivariateNormal
from gpytorch.mlls import ExactMarginalLogLikelihood, SumMarginalLogLikelihood
from linear_operator.operators import DiagLinearOperator
from linear_operator.utils.errors import NotPSDError

from benchmark import space
from benchmark._typing import FloatArray, IntArray
from benchmark.errors import ConfigurationError

DTYPE = torch.float64
#: L-BFGS-B stops when the relative decrease of the negative marginal log-likelihood falls below this;
#: warm-started refits then take a few iterations instead of hitting ``maxiter``
FIT_FTOL = 1e-6
ENCODINGS: tuple[str, ...] = ("ordinal", "onehot", "categorical", "mixed")

#: per-gene min and max real value, shape (28,)
_VMIN = np.array([min(v) for v in space.GENE_VALUES], dtype=np.float64)
_VMAX = np.array([max(v) for v in space.GENE_VALUES], dtype=np.float64)
#: one-hot column offsets per gene, shape (28,)
_ONEHOT_OFFSET = np.concatenate([[0], np.cumsum(space.CARDINALITIES)[:-1]]).astype(np.int64)
N_ONEHOT = int(space.CARDINALITIES.sum())

#: hyper-parameters of one fitted outcome model, parameter name -> array (JSON/npz friendly)
GPParams = dict[str, FloatArray]


def check_encoding(name: object, owner: str = "BayesianOptimization") -> str:
    """``name`` if it is one of :data:`ENCODINGS`; otherwise a ConfigurationError naming ``owner``'s
    hyperparameter and the choices."""
    if not isinstance(name, str) or name not in ENCODINGS:
        raise ConfigurationError(
            f"{owner}: hyperparameter encoding={name!r} must be one of {', '.join(ENCODINGS)}"
        )
    return name


def ordinal_features(X: IntArray) -> FloatArray:
    """Real gene values scaled to ``[0, 1]`` per gene: ``(n, 28)`` ints -> ``(n, 28)`` floats."""
    dec = space.decode(X)
    real = np.empty((dec["e"].shape[0], space.N_GENES), dtype=np.float64)
    for i, field in enumerate(space.FIELDS):
        real[:, i :: space.GENES_PER_BLOCK] = dec[field]
    return (real - _VMIN) / (_VMAX - _VMIN)


def encode(X: IntArray, encoding: str) -> torch.Tensor:
    """GP input features of a gene batch ``(n, 28)`` as a float64 tensor ``(n, d_enc)``."""
    X = np.asarray(X, dtype=np.int64)
    if encoding == "ordinal":
        feats = ordinal_features(X)
    elif encoding == "onehot":
        feats = np.zeros((X.shape[0], N_ONEHOT), dtype=np.float64)
        rows = np.repeat(np.arange(X.shape[0]), space.N_GENES)
        feats[rows, (X + _ONEHOT_OFFSET[None, :]).ravel()] = 1.0
    elif encoding == "categorical":
        feats = X.astype(np.float64)
    elif encoding == "mixed":
        feats = np.concatenate([ordinal_features(X), X.astype(np.float64)], axis=1)
    else:
        check_encoding(encoding)
        raise AssertionError("unreachable")
    return torch.from_numpy(np.ascontiguousarray(feats)).to(DTYPE)


def build_gp(train_X: torch.Tensor, train_y: torch.Tensor, encoding: str) -> SingleTaskGP:
    """One unfitted GP for one outcome: ``train_X (n, d_enc)``, ``train_y (n, 1)``, ``Standardize``-d."""
    if encoding in ("ordinal", "onehot"):
        return SingleTaskGP(train_X, train_y, outcome_transform=Standardize(m=1))

    if encoding == "categorical":
        return MixedSingleTaskGP(
            train_X, train_y, cat_dims=list(range(train_X.shape[-1])), outcome_transform=Standardize(m=1)
        )
    if encoding == "mixed":
        d = train_X.shape[-1] // 2
        return MixedSingleTaskGP(
            train_X, train_y, cat_dims=list(range(d, 2 * d)), outcome_transform=Standardize(m=1)
        )
    check_encoding(encoding)
    raise AssertionError("unreachable")


def set_noise_floor(model: SingleTaskGP, floor: float) -> None:
    """Constrain the likelihood noise variance (standardised units) to be ``>= floor`` and start there.

    Used for the ``+-1`` feasibility outcome: a step function is otherwise interpolated with tiny noise and
    short lengthscales, which generalises worse (held-out AUC/Brier in ``optimizers/bo/README.md``).
    """
    noise_covar = model.likelihood.noise_covar
    constraint = GreaterThan(floor, transform=None, initial_value=2.0 * floor)
    noise_covar.register_constraint("raw_noise", constraint)
    noise_covar.noise = 2.0 * floor


def gp_params(model: torch.nn.Module) -> GPParams:
    """The model's (raw) hyper-parameters as float64 numpy arrays, keyed by parameter name."""
    return {name: p.detach().cpu().numpy().astype(np.float64).copy() for name, p in model.named_parameters()}


def set_gp_params(model: torch.nn.Module, params: Mapping[str, Any]) -> int:
    """Copy matching hyper-parameters (same name and shape) into ``model``; returns how many were set."""
    n = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in params:
                value = torch.as_tensor(np.asarray(params[name], dtype=np.float64), dtype=p.dtype)
                if value.shape == p.shape:
                    p.copy_(value)
                    n += 1
    return n


def fit_gp(model: SingleTaskGP, maxiter: int = 200) -> bool:
    """Fit hyper-parameters by exact marginal likelihood (L-BFGS-B, one deterministic attempt).

    Starts from the model's current hyper-parameters (warm start). Returns False when the fit failed; the
    model then keeps its starting hyper-parameters (no random restarts: those would draw from torch's
    global generator and break reproducibility).
    """
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    return _fit(mll, maxiter)


def _fit(mll: ExactMarginalLogLikelihood | SumMarginalLogLikelihood, maxiter: int) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(
                mll,
                optimizer_kwargs={"options": {"maxiter": int(maxiter), "ftol": FIT_FTOL}},
                max_attempts=1,
                warning_handler=lambda w: True,
            )
        return True
    except (ModelFittingError, NotPSDError, RuntimeError, ValueError):
        mll.eval()
        return False


def fit_model_list(
    train_X: torch.Tensor,
    train_Y: Sequence[torch.Tensor],
    encoding: str,
    warm: Sequence[Mapping[str, Any] | None] | None = None,
    maxiter: int = 200,
    fit: bool = True,
    noise_floor: float | None = None,
) -> tuple[ModelListGP, list[GPParams]]:
    """One GP per outcome on shared inputs, warm-started and fitted; returns ``(model, params per outcome)``.

    Args:
        train_X: ``(n, d_enc)`` encoded inputs.
        train_Y: per outcome an ``(n, 1)`` tensor (maximisation sense).
        encoding: see :data:`ENCODINGS`.
        warm: per outcome hyper-parameters to start from (None = BoTorch defaults).
        maxiter: L-BFGS-B iteration cap per outcome.
        fit: False = only condition on the data with the warm-start hyper-parameters (no optimisation).
        noise_floor: if given, lower bound of every outcome's noise variance (see :func:`set_noise_floor`).
    """
    models: list[SingleTaskGP] = []
    for i, y in enumerate(train_Y):
        gp = build_gp(train_X, y, encoding)
        if noise_floor is not None:
            set_noise_floor(gp, noise_floor)
        if warm is not None and i < len(warm) and warm[i] is not None:
            set_gp_params(gp, warm[i])  # type: ignore[arg-type]
        if fit:
            fit_gp(gp, maxiter=maxiter)
        gp.eval()
        models.append(gp)
    return ModelListGP(*models), [gp_params(m) for m in models]


class MarginalPosteriorModel(Model):
    """A ``ModelListGP`` of independent single-output GPs that answers the ``q = 1`` posterior of a
    candidate batch ``X (b, 1, d_enc)`` with one marginal pass over ``(b, d_enc)``.

    With one point per batch element, the joint posterior of independent outputs *is* the product of
    their marginals, so acquisition values equal the wrapped model's
    (``tests/optimizers/test_bo_marginal.py`` checks this).

    The wrapped model's batched path is slower: for each of the ``b`` candidates it builds the joint
    train+test kernel, ``(n + 1)^2`` entries. Screening a pool of thousands of candidates then spends
    most of an ask evaluating kernels (``experiments/perf/bo_speed.py``).

    Any other shape (``q > 1``, or pending points appended) goes to the wrapped model unchanged.
    """

    def __init__(self, model: ModelListGP) -> None:
        super().__init__()
        self.inner = model

    @property
    def num_outputs(self) -> int:
        return int(self.inner.num_outputs)

    def posterior(
        self,
        X: torch.Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | torch.Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> Any:
        if (
            X.dim() < 3
            or X.shape[-2] != 1
            or output_indices is not None
            or posterior_transform is not None
            or not isinstance(observation_noise, bool)
        ):
            return self.inner.posterior(
                X,
                output_indices=output_indices,
                observation_noise=observation_noise,
                posterior_transform=posterior_transform,
                **kwargs,
            )
        batch = X.shape[:-2]
        flat = X.reshape(-1, X.shape[-1])
        mvns = []
        models: list[Any] = list(self.inner.models)
        for sub in models:
            post = sub.posterior(flat, observation_noise=observation_noise)
            mean = post.mean.reshape(*batch, 1)
            var = post.variance.reshape(*batch, 1)
            mvns.append(MultivariateNormal(mean, DiagLinearOperator(var)))
        dist = mvns[0] if len(mvns) == 1 else MultitaskMultivariateNormal.from_independent_mvns(mvns=mvns)
        return GPyTorchPosterior(distribution=dist)
