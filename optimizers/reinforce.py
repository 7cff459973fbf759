"""REINFORCE with an LSTM controller, as in the Accel-NASBench paper's policy-gradient search.

The controller is an LSTM (hidden 100, token embedding 32) that emits the 28 genes one after another: at
step ``j`` it reads the embedding of the previous choice (a start token at ``j = 0``), and a softmax over
gene ``j``'s ``space.CARDINALITIES[j]`` choices gives the next gene. Output heads are shared per field type
across blocks (expansion, kernel, layers, layers of block 5, squeeze-excite), as upstream.

Learning (one Adam step, lr 3.5e-4, per :meth:`Reinforce.tell` with at least one usable row)::

    baseline <- decay * baseline + (1 - decay) * reward   # per row, in order; first reward initialises it
    loss = mean_rows[ -(reward - baseline) * sum_j log p(x_j) - entropy_weight * sum_j H_j ]

As in the upstream script, the moving-average baseline (decay 0.95) is updated with the told rewards *before*
the advantages are taken. ``H_j`` is the entropy of the full categorical distribution at step ``j`` (upstream
summed ``-p log p`` over the sampled choices only; with weight 1e-5 the difference is immaterial).

Reward, from natural values (``problem.to_natural(F)``):

- the accuracy objective, in **percent** (e.g. 75.3), as upstream fed the surrogate's ``val_top1`` (a
  percentage) straight into the reward; a problem without an accuracy objective uses 1.0 instead;
- times ``(value / target) ** reward_exponent`` for every other maximised objective (throughput) and
  ``(target / value) ** reward_exponent`` for every other minimised one (latency), exponent 0.07 by default.
  With a single exponent the target only rescales the reward by a constant, i.e. it is a scale knob, not a
  constraint (upstream's formula; MnasNet's hard-constraint variant is not implemented);
- times ``infeasible_penalty`` (default 0.5) for feasible=False rows; rows with NaN in ``F`` (failed
  evaluations), or any other row whose reward is not finite, are left out of the update.

With ``ask(1)`` followed by ``tell`` every step reproduces the paper (one architecture per policy step);
upstream used batches of 6, which ``ask(6)`` reproduces. Randomness comes only from the numpy generator:
one draw at construction seeds a private ``torch.Generator`` used for weight init and sampling.

Speed: ``ask(n)`` samples the whole batch in one 28-step pass; ``tell`` runs the LSTM as one fused call.
An ``ask(1)`` + ``tell`` step costs ~5 ms of CPU. The tensors are tiny, so on a shared machine torch's
default of one thread per core is many times slower (each op waits for a descheduled OpenMP thread):
:attr:`Reinforce.torch_threads` is 1, and the process owner (CLI, tests) applies it with
``torch.set_num_threads``; this module never changes global torch settings. See
``experiments/perf/reinforce_speed.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.errors import ConfigurationError
from optimizers._checks import check_ask, check_float, check_int, check_non_negative, check_tell
from optimizers.base import Optimizer, ProblemInfo, StateTree

__all__ = ["Reinforce"]

_OWNER = "Reinforce"
_N_GENES = space.N_GENES
_CARD = space.CARDINALITIES  # (28,)

# Input tokens: one per (field type, choice) plus a start token (e 0-2, k 3-4, l 5-8, se 9-10, start 11).
_FIELD_TOKEN_OFFSET = np.array([0, 3, 5, 9], dtype=np.int64)
_START_TOKEN = 11
_N_TOKENS = 12
# Output logits: heads e(3) k(2) l(3) l_block5(4) se(2) packed in one Linear layer of 14 outputs.
_N_LOGITS = 14


def _head_offset(col: int) -> int:
    field = col % space.GENES_PER_BLOCK
    if field == 2 and col // space.GENES_PER_BLOCK == 5:
        return 8
    return (0, 3, 5, 12)[field]


#: first logit of gene j's head, shape (28,)
_HEAD_OFFSET = np.array([_head_offset(j) for j in range(_N_GENES)], dtype=np.int64)
#: token offset of gene j's choices, shape (28,)
_TOKEN_OFFSET = _FIELD_TOKEN_OFFSET[np.arange(_N_GENES) % space.GENES_PER_BLOCK]
#: which logits belong to gene j, shape (28, 14)
_LOGIT_MASK = np.zeros((_N_GENES, _N_LOGITS), dtype=bool)
for _j in range(_N_GENES):
    _LOGIT_MASK[_j, _HEAD_OFFSET[_j] : _HEAD_OFFSET[_j] + _CARD[_j]] = True

_HP_DEFAULTS: dict[str, Any] = {
    "lr": 3.5e-4,
    "hidden_size": 100,
    "embedding_size": 32,
    "entropy_weight": 1e-5,
    "baseline_decay": 0.95,
    "reward_exponent": 0.07,
    "infeasible_penalty": 0.5,
    "init_range": 0.1,
}


class _Controller(nn.Module):
    """Parameters of the controller: token embedding, one LSTM layer, the packed per-field heads."""

    def __init__(self, embedding_size: int, hidden_size: int) -> None:
        super().__init__()
        # Built on the meta device so that torch's default initialisers never touch the global RNG;
        # :class:`Reinforce` initialises the weights from its own generator.
        self.embedding = nn.Embedding(_N_TOKENS, embedding_size, device="meta")
        self.lstm = nn.LSTM(embedding_size, hidden_size, device="meta")
        self.head = nn.Linear(hidden_size, _N_LOGITS, device="meta")
        self.to_empty(device="cpu")


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh`` as ``2 sigmoid(2x) - 1``: torch's CPU ``tanh`` goes through MKL VML, which opens an OpenMP
    region even for 100 numbers (milliseconds per call when the cores are shared); ``sigmoid`` does not."""
    return torch.sigmoid(2.0 * x).mul_(2.0).sub_(1.0)


def _state_key(name: str) -> str:
    return name.replace(".", "_")


class Reinforce(Optimizer):
    """Policy-gradient (REINFORCE) controller of the Accel-NASBench paper, as an ask/tell optimizer.

    Hyperparameters (keyword arguments):
        lr: Adam learning rate (3.5e-4).
        hidden_size, embedding_size: LSTM width (100) and token embedding size (32).
        entropy_weight: weight of the entropy bonus (1e-5).
        baseline_decay: decay of the moving-average reward baseline (0.95).
        reward_target: target of each non-accuracy objective in its natural unit (img/s, ms): a float when
            there is one such objective, else a sequence (objective order) or a mapping ``{target: value}``;
            default: the midpoint of the problem's ideal and nadir in natural units.
        reward_exponent: exponent of the (value/target) factors (0.07).
        infeasible_penalty: reward multiplier for infeasible rows (0.5).
        init_range: weights start uniform in ``[-init_range, init_range]``, head biases at 0 (0.1).
    """

    name = "reinforce"
    #: False: several objectives are scalarised into one reward (one trade-off), no Pareto front is sought
    multi_objective = False
    #: the tensors are tiny: extra intra-op threads only wait on each other (see the module docstring)
    torch_threads = 1

    @property
    def preferred_batch_size(self) -> int | None:
        return 1

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        *,
        lr: float = _HP_DEFAULTS["lr"],
        hidden_size: int = _HP_DEFAULTS["hidden_size"],
        embedding_size: int = _HP_DEFAULTS["embedding_size"],
        entropy_weight: float = _HP_DEFAULTS["entropy_weight"],
        baseline_decay: float = _HP_DEFAULTS["baseline_decay"],
        reward_target: float | Sequence[float] | Mapping[str, float] | None = None,
        reward_exponent: float = _HP_DEFAULTS["reward_exponent"],
        infeasible_penalty: float = _HP_DEFAULTS["infeasible_penalty"],
        init_range: float = _HP_DEFAULTS["init_range"],
    ) -> None:
        super().__init__(problem, rng)
        self.hp: dict[str, Any] = {
            "lr": check_float(_OWNER, "lr", lr, 0.0, math.inf, open_low=True, open_high=True),
            "hidden_size": check_int(_OWNER, "hidden_size", hidden_size, 1),
            "embedding_size": check_int(_OWNER, "embedding_size", embedding_size, 1),
            "entropy_weight": check_non_negative(_OWNER, "entropy_weight", entropy_weight),
            "baseline_decay": check_float(_OWNER, "baseline_decay", baseline_decay, 0.0, 1.0, open_high=True),
            "reward_exponent": check_non_negative(_OWNER, "reward_exponent", reward_exponent),
            "infeasible_penalty": check_non_negative(_OWNER, "infeasible_penalty", infeasible_penalty),
            "init_range": check_non_negative(_OWNER, "init_range", init_range),
        }
        self._acc_col: int | None = (
            problem.objectives.index("accuracy") if "accuracy" in problem.objectives else None
        )
        #: non-accuracy objective columns and their reward targets (natural units)
        self._factor_cols: list[int] = [i for i in range(problem.n_obj) if i != self._acc_col]
        self.reward_targets: dict[str, float] = self._resolve_targets(reward_target)
        self.hp["reward_targets"] = dict(self.reward_targets)

        self._gen = torch.Generator()
        self._gen.manual_seed(int(rng.integers(2**63)))
        self.net = _Controller(self.hp["embedding_size"], self.hp["hidden_size"])
        with torch.no_grad():
            for pname, p in self.net.named_parameters():
                if pname == "head.bias":
                    p.zero_()
                else:
                    nn.init.uniform_(p, -self.hp["init_range"], self.hp["init_range"], generator=self._gen)
        # fused: one kernel per tensor (no VML sqrt), ~3x faster than the default for this small net
        self.adam = torch.optim.Adam(self.net.parameters(), lr=self.hp["lr"], fused=True)
        self.baseline: float | None = None
        self.n_updates = 0
        self.n_told = 0

        self._head_offset = torch.from_numpy(_HEAD_OFFSET)
        self._token_offset = torch.from_numpy(_TOKEN_OFFSET)
        self._logit_mask = torch.from_numpy(_LOGIT_MASK)

    # configuration ---------------------------------------------------------------------------------
    def _default_target(self, col: int) -> float:
        p = self.problem
        ends = p.to_natural(np.array([p.ideal, p.nadir], dtype=float))[:, col]
        mid = float(ends.mean())
        if not (math.isfinite(mid) and mid > 0):
            raise ConfigurationError(
                f"{_OWNER}: no usable default reward target for objective {p.objectives[col]!r} of "
                f"problem {p.name!r} (ideal/nadir midpoint {mid}); pass "
                f"reward_target={{'{p.objectives[col]}': value}}"
            )
        return mid

    def _resolve_targets(
        self, given: float | Sequence[float] | Mapping[str, float] | None
    ) -> dict[str, float]:
        names = [self.problem.objectives[i] for i in self._factor_cols]
        if given is None:
            values = {n: self._default_target(i) for n, i in zip(names, self._factor_cols, strict=True)}
        elif not names:
            raise ConfigurationError(
                f"{_OWNER}: reward_target={given!r} does not apply: problem {self.problem.name!r} has no "
                f"objective besides accuracy; drop reward_target"
            )
        elif isinstance(given, Mapping):
            unknown = sorted(set(map(str, given)) - set(names))
            if unknown:
                raise ConfigurationError(
                    f"{_OWNER}: reward_target names {unknown}, which are not non-accuracy objectives of "
                    f"problem {self.problem.name!r}; use keys among {names}"
                )
            values = {
                n: float(given[n]) if n in given else self._default_target(i)
                for n, i in zip(names, self._factor_cols, strict=True)
            }
        elif isinstance(given, (int, float)):
            if len(names) != 1:
                raise ConfigurationError(
                    f"{_OWNER}: reward_target={given!r} is one number but problem {self.problem.name!r} has "
                    f"{len(names)} non-accuracy objectives {names}; pass a list of {len(names)} values "
                    f"or a mapping {{objective: value}}"
                )
            values = {names[0]: float(given)}
        elif isinstance(given, Sequence) and not isinstance(given, str):
            if len(given) != len(names):
                raise ConfigurationError(
                    f"{_OWNER}: reward_target has {len(given)} values but problem {self.problem.name!r} has "
                    f"{len(names)} non-accuracy objectives {names}"
                )
            values = {n: float(v) for n, v in zip(names, given, strict=True)}
        else:
            raise ConfigurationError(
                f"{_OWNER}: reward_target must be a number, list or mapping, got {given!r}"
            )
        for n, v in values.items():
            if not (math.isfinite(v) and v > 0):
                raise ConfigurationError(
                    f"{_OWNER}: reward target for {n!r} must be a positive number, got {v}"
                )
        return values

    # reward ----------------------------------------------------------------------------------------
    def reward(self, F: FloatArray, feasible: BoolArray | None = None) -> FloatArray:
        """Scalar rewards ``(n,)`` for internal-minimisation objectives ``F (n, m)`` (NaN rows give NaN)."""
        F = np.asarray(F, dtype=float)
        if F.ndim == 1:
            F = F[:, None]
        nat = self.problem.to_natural(F)
        out = nat[:, self._acc_col].copy() if self._acc_col is not None else np.ones(len(nat))
        w = self.hp["reward_exponent"]
        for col in self._factor_cols:
            target = self.reward_targets[self.problem.objectives[col]]
            value = np.maximum(nat[:, col], 1e-12)
            ratio = value / target if self.problem.maximize[col] else target / value
            out = out * ratio**w
        if feasible is not None:
            out = np.where(np.asarray(feasible, dtype=bool), out, out * self.hp["infeasible_penalty"])
        return out

    # policy ----------------------------------------------------------------------------------------
    def _sample(self, n: int, with_log_prob: bool = False) -> tuple[IntArray, torch.Tensor | None]:
        """Sample ``n`` architectures in one batched pass: genes ``(n, 28)``, if asked log-probs ``(n,)``.

        Steps the LSTM by hand (same maths and gate order i, f, g, o as ``torch.nn.LSTM``, used by
        :meth:`_log_prob`; log-probabilities agree to float32 rounding) with the input
        projection of every token computed once; each gene is drawn by inverse CDF from one block of
        ``(n, 28)`` uniforms of the private generator (cheaper than 28 ``torch.multinomial`` calls).
        """
        net = self.net
        with torch.no_grad():
            w_ih, w_hh, b_ih, b_hh = net.lstm.all_weights[0]
            w_hh_t = w_hh.t()  # (H, 4H)
            # input-to-gate projection of every token, both biases folded in: (n_tokens, 4H)
            token_proj = torch.addmm(b_ih + b_hh, net.embedding.weight, w_ih.t())
            head_w, head_b = net.head.weight, net.head.bias
            uniforms = torch.rand((n, _N_GENES), generator=self._gen)
            h = torch.zeros(n, self.hp["hidden_size"])
            c = torch.zeros_like(h)
            tok = torch.full((n,), _START_TOKEN, dtype=torch.int64)
            out = torch.empty((n, _N_GENES), dtype=torch.int64)
            logp = torch.zeros(n) if with_log_prob else None
            for j in range(_N_GENES):
                gates = torch.addmm(token_proj[tok], h, w_hh_t)
                i_g, f_g, g_g, o_g = gates.chunk(4, dim=1)
                c = torch.sigmoid(f_g) * c + torch.sigmoid(i_g) * _tanh(g_g)
                h = torch.sigmoid(o_g) * _tanh(c)
                lo = int(_HEAD_OFFSET[j])
                hi = lo + int(_CARD[j])
                probs = torch.softmax(torch.addmm(head_b[lo:hi], h, head_w[lo:hi].t()), dim=1)  # (n, card)
                below = probs.cumsum(dim=1) < uniforms[:, j : j + 1]
                a = below.sum(dim=1).clamp_(max=hi - lo - 1)  # (n,); clamp guards cdf[-1] < 1 by rounding
                if logp is not None:
                    logp += probs.gather(1, a[:, None]).squeeze(1).log()
                out[:, j] = a
                tok = a + int(_TOKEN_OFFSET[j])
        return out.numpy().astype(np.int64), logp

    def _log_prob(self, X: IntArray) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable log-probability ``(n,)`` of ``X (n, 28)`` and summed step entropies ``(n,)``."""
        acts = torch.from_numpy(np.ascontiguousarray(X.T))  # (28, n)
        tokens = torch.empty_like(acts)
        tokens[0] = _START_TOKEN
        tokens[1:] = acts[:-1] + self._token_offset[:-1, None]
        hs, _ = self.net.lstm(self.net.embedding(tokens))  # (28, n, H), zero initial state, one fused call
        logits = self.net.head(hs).masked_fill(~self._logit_mask[:, None, :], -1e9)  # (28, n, 14)
        log_probs = torch.log_softmax(logits, dim=2)
        chosen = log_probs.gather(2, (acts + self._head_offset[:, None]).unsqueeze(2)).squeeze(2)  # (28, n)
        entropy = -(log_probs.exp() * log_probs).sum(dim=2)  # masked logits contribute exactly 0
        return chosen.sum(dim=0), entropy.sum(dim=0)

    # ask / tell ------------------------------------------------------------------------------------
    def ask(self, n: int) -> IntArray:
        """Sample ``n`` architectures from the controller, shape ``(n, 28)`` int64."""
        n = check_ask(_OWNER, n)
        if n == 0:
            return np.zeros((0, _N_GENES), dtype=np.int64)
        return self._sample(n)[0]

    def tell(self, X: IntArray, F: FloatArray, feasible: BoolArray | None = None) -> None:
        """One policy-gradient step on the rows of ``X (n, 28)``, ``F (n, m)`` with a finite reward."""
        X, F, _, _ = check_tell(self, X, F, feasible)
        self.n_told += len(X)
        fe = np.ones(len(X), dtype=bool) if feasible is None else np.asarray(feasible, dtype=bool)
        rewards = self.reward(F, fe)
        ok = np.isfinite(rewards)  # failed (NaN) rows, and anything else without a usable reward
        if not ok.any():
            return
        X, rewards = X[ok], rewards[ok]
        decay = self.hp["baseline_decay"]
        baseline = self.baseline
        for r in rewards:
            baseline = float(r) if baseline is None else decay * baseline + (1.0 - decay) * float(r)
        assert baseline is not None  # at least one usable row
        self.baseline = baseline
        advantage = torch.as_tensor(rewards - baseline, dtype=torch.float32)
        log_p, entropy = self._log_prob(X)
        loss = (-advantage * log_p - self.hp["entropy_weight"] * entropy).mean()
        self.adam.zero_grad(set_to_none=True)
        loss.backward()
        self.adam.step()
        self.n_updates += 1

    # state -----------------------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor settings, with ``reward_targets`` resolved per objective (natural units)."""
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.hp.items()}

    def _state(self) -> StateTree:
        """Weights, Adam moments, baseline, counters and the torch generator state (arrays + JSON scalars)."""
        names = [n for n, _ in self.net.named_parameters()]
        adam_state = self.adam.state_dict()["state"]
        adam: dict[str, dict[str, Any]] = {}
        for idx, pname in enumerate(names):
            if idx in adam_state:
                st = adam_state[idx]
                adam[_state_key(pname)] = {
                    "step": float(st["step"]),
                    "exp_avg": st["exp_avg"].detach().numpy().copy(),
                    "exp_avg_sq": st["exp_avg_sq"].detach().numpy().copy(),
                }
        return {
            "weights": {_state_key(n): p.detach().numpy().copy() for n, p in self.net.named_parameters()},
            "adam": adam,
            "baseline": self.baseline,
            "n_updates": self.n_updates,
            "n_told": self.n_told,
            "torch_generator": self._gen.get_state().numpy().copy(),
        }

    def _load_state(self, state: StateTree) -> None:
        params = dict(self.net.named_parameters())
        weights = state["weights"]
        with torch.no_grad():
            for pname, p in params.items():
                arr = np.asarray(weights[_state_key(pname)], dtype=np.float32)
                if arr.shape != tuple(p.shape):
                    raise ValueError(
                        f"{_OWNER}.load_state(): weight {pname} has shape {arr.shape}, need {tuple(p.shape)}"
                    )
                p.copy_(torch.from_numpy(arr))
        adam_sd = self.adam.state_dict()
        new_state: dict[int, dict[str, torch.Tensor]] = {}
        for idx, pname in enumerate(params):
            st = state["adam"].get(_state_key(pname))
            if st is not None:
                new_state[idx] = {
                    "step": torch.tensor(float(st["step"]), dtype=torch.float32),
                    "exp_avg": torch.from_numpy(np.array(st["exp_avg"], dtype=np.float32)),
                    "exp_avg_sq": torch.from_numpy(np.array(st["exp_avg_sq"], dtype=np.float32)),
                }
        self.adam.load_state_dict({"state": new_state, "param_groups": adam_sd["param_groups"]})
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        self.n_updates = int(state["n_updates"])
        self.n_told = int(state["n_told"])
        self._gen.set_state(torch.from_numpy(np.array(state["torch_generator"], dtype=np.uint8)))
