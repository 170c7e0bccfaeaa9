"""The benchmark tasks (BENCHMARKS.md §2): problems that run on two CPU cores without downloads.

A :class:`Task` is a declaration: what is trained, on which data, for how many steps, and the target it must reach.
The target is part of the definition and was fixed before any optimizer was compared: a value a little looser than
the best that AdamW reached over the full learning-rate grid (seed 0) within the full step budget; the quick target
is set the same way for the quick budget (docs/bench.md lists both calibrations). ``Task.build(seed)`` returns a
:class:`Problem`, the live state of one run: its parameters, a minibatch loss for step t, and the evaluation of
the target's metric.

Data (digits split, text split, planted quadratic) is fixed across seeds; a seed changes the initialisation and
the order of minibatches only, so the spread over seeds measures the optimizer, not the data set. Every data task has
three roles: a training split (minibatches), a validation split (``evaluate("validation")``: targets and tuning) and a
test split (``evaluate("test")``: scores only). The exact objectives (Rosenbrock, the noisy quadratic) have no data:
both evaluations are the objective itself.

``build(seed, device)``: the neural tasks run on ``device`` (``--device cuda``); the byte-level language model is
built at its full size only there, and at a reduced size on CPU.
"""

from __future__ import annotations

import math
import sysconfig
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["Task", "Problem", "TASKS", "task_names", "SPLITS"]

#: The two evaluation roles (the third, training, only feeds minibatches).
SPLITS = ("validation", "test")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    return split


@dataclass
class Problem:
    """One run's state: ``params`` to optimise, ``loss(step)`` the minibatch loss at step t (a scalar tensor with a
    graph), ``evaluate(split)`` the target's metric on the validation or test split (a float, computed without
    gradients; default validation), ``module`` when the
    parameters belong to an ``nn.Module``, and ``hidden``: the hidden-layer weight matrices (2-D; not the input
    layer, embeddings or output head), which Muon orthogonalises while the rest goes to AdamW."""

    params: list[Tensor]
    loss: Callable[[int], Tensor]
    evaluate: Callable[..., float]
    module: nn.Module | None = None
    hidden: list[Tensor] = field(default_factory=list)


@dataclass(frozen=True)
class Task:
    """A benchmark task. ``metric`` names what ``evaluate`` returns; the run reaches the target when the metric is
    ≤ ``target`` (``goal="min"``) or ≥ ``target`` (``goal="max"``). ``steps`` is the step budget per size and
    ``eval_every`` the evaluation interval (steps to target are resolved to that interval)."""

    name: str
    description: str
    metric: str
    goal: Literal["min", "max"]
    target: float
    quick_target: float
    steps: dict[str, int]
    eval_every: dict[str, int]
    build: Callable[..., Problem] = field(repr=False)

    def target_for(self, size: str) -> float:
        """The full-size target, or the looser one that fits the quick size's smaller step budget."""
        return self.quick_target if size == "quick" else self.target

    def reached(self, value: float, size: str = "full") -> bool:
        if not math.isfinite(value):
            return False
        target = self.target_for(size)
        return value <= target if self.goal == "min" else value >= target


# --------------------------------------------------------------------------------------------------- Rosenbrock


def rosenbrock(x: Tensor) -> Tensor:
    """Chained Rosenbrock Σᵢ 100 (x_{i+1} − xᵢ²)² + (1 − xᵢ)², minimum 0 at x = 1."""
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def _rosenbrock(dim: int) -> Callable[[int], Problem]:
    def build(seed: int, device: str = "cpu") -> Problem:
        # The classic start (−1.2, 1) repeated, with a seeded perturbation of 1e-2 so that seeds differ. Float64 on
        # the CPU whatever the device: 2 or 64 coordinates gain nothing from an accelerator.
        gen = torch.Generator().manual_seed(seed)
        start = torch.tensor([-1.2, 1.0], dtype=torch.float64).repeat(dim // 2)
        x = (start + 1e-2 * torch.randn(dim, generator=gen, dtype=torch.float64)).requires_grad_()

        def evaluate(split: str = "validation") -> float:
            _check_split(split)
            with torch.no_grad():
                return float(rosenbrock(x))

        return Problem([x], lambda t: rosenbrock(x), evaluate)

    return build


# ------------------------------------------------------------------------------------------- noisy quadratic

NQ_DIM = 64


@cache
def _noisy_quadratic_spectrum() -> tuple[Tensor, Tensor]:
    """Curvatures h log-spaced over four decades; noise variances κ log-spaced over four decades and assigned by a
    fixed random permutation, so that κ is not proportional to the curvature (where α matters, §2)."""
    h = torch.logspace(0.0, -4.0, NQ_DIM, dtype=torch.float64)
    kappa = torch.logspace(-4.0, 0.0, NQ_DIM, dtype=torch.float64)
    perm = torch.randperm(NQ_DIM, generator=torch.Generator().manual_seed(1234))
    return h, kappa[perm]


def noisy_quadratic_start() -> tuple[Tensor, Tensor]:
    """(x₀, x*): the start and the minimum of the noisy quadratic, one unit apart along every axis (x₀ − x* = 1) with
    x₀ ⟂ x₀ − x* (x₀: fixed N(0, 1) draws, mean removed, unit RMS). Weight decay pulls every coordinate towards 0;
    with the minimum at the origin it knew the answer (decoupled decay alone solved the low-curvature directions and
    AdamW took a fifth of every other optimizer's steps), and with a start whose direction to the origin leans
    towards the minimum it would still gain at first order. Here moving towards 0 changes the error only at second
    order at the start, and at the minimum decay pulls away from it."""
    a = torch.randn(NQ_DIM, generator=torch.Generator().manual_seed(4321), dtype=torch.float64)
    a = a - a.mean()
    a = a / a.pow(2).mean().sqrt()
    return a, a - 1.0


def _noisy_quadratic(seed: int, device: str = "cpu") -> Problem:
    h, kappa = _noisy_quadratic_spectrum()
    gen = torch.Generator().manual_seed(10_000 + seed)
    x0, x_star = noisy_quadratic_start()
    x = x0.clone().requires_grad_(True)
    noise_scale = kappa.sqrt()

    def loss(t: int) -> Tensor:
        # H(x) = ½ Σ hᵢ (xᵢ − x*ᵢ)² + φ with ∇φ = √κ ξ: the minibatch gradient is h (x − x*) + √κ ξ, ξ ~ N(0, I)
        # (2.3)–(2.8).
        xi = torch.randn(NQ_DIM, generator=gen, dtype=torch.float64)
        e = x - x_star
        return 0.5 * (h * e * e).sum() + (noise_scale * xi * e).sum()

    def evaluate(split: str = "validation") -> float:
        _check_split(split)  # the exact objective: no data, the same for both roles
        with torch.no_grad():
            e = x - x_star
            return float(0.5 * (h * e * e).sum())

    return Problem([x], loss, evaluate)


# ------------------------------------------------------------------------------------------------------ digits


@cache
def _digits() -> dict[str, tuple[Tensor, Tensor]]:
    """scikit-learn's 8×8 digits split 60 / 20 / 20 (seeded, fixed) into train / validation / test, standardised
    with the mean and standard deviation of the training split only (no statistic of held-out data leaks in)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the digits tasks need scikit-learn: pip install 'geodyn[bench]'") from exc
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n_val = n_test = len(x) // 5
    idx = {"test": perm[:n_test], "validation": perm[n_test : n_test + n_val], "train": perm[n_test + n_val :]}
    train = x[idx["train"]]
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)  # constant pixels (always 0) keep scale 1e-6 → 0
    return {k: ((x[i] - mean) / std, y[i]) for k, i in idx.items()}


def _hidden_linear(model: nn.Module) -> list[Tensor]:
    """Weights of the Linear layers between the first and the last one (2-D, so Muon applies)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [m.weight for m in linears[1:-1]]


def _classifier(make_model: Callable[[], nn.Module], image: bool, batch: int = 32) -> Callable[[int], Problem]:
    def build(seed: int, device: str = "cpu") -> Problem:
        shape = (-1, 1, 8, 8) if image else (-1, 64)
        data = {k: (x.view(shape).to(device), y.to(device)) for k, (x, y) in _digits().items()}
        x_train, y_train = data["train"]
        torch.manual_seed(seed)
        model = make_model().to(device)
        gen = torch.Generator().manual_seed(20_000 + seed)

        def loss(t: int) -> Tensor:
            idx = torch.randint(0, len(x_train), (batch,), generator=gen).to(device)
            return F.cross_entropy(model(x_train[idx]), y_train[idx])

        def evaluate(split: str = "validation") -> float:
            x, y = data[_check_split(split)]
            with torch.no_grad():
                return float((model(x).argmax(1) == y).double().mean())

        return Problem(list(model.parameters()), loss, evaluate, module=model, hidden=_hidden_linear(model))

    return build


def _logistic() -> nn.Module:
    return nn.Linear(64, 10)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 4 * 4, 10)
    )


# ------------------------------------------------------------------------------------------------ multiplication


def _multiplication(seed: int, device: str = "cpu", batch: int = 32) -> Problem:
    from geodyn.tasks import multiplication_task

    # Three independent samples of [−1, 1]²: train, validation, test.
    data = {
        k: tuple(t.to(device) for t in multiplication_task(1024, seed=i, dtype=torch.float32))
        for i, k in enumerate(("train", "validation", "test"))
    }
    x_train, y_train = data["train"]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)).to(device)
    gen = torch.Generator().manual_seed(30_000 + seed)

    def loss(t: int) -> Tensor:
        idx = torch.randint(0, len(x_train), (batch,), generator=gen).to(device)
        return F.mse_loss(model(x_train[idx]), y_train[idx])

    def evaluate(split: str = "validation") -> float:
        x, y = data[_check_split(split)]
        with torch.no_grad():
            return float(F.mse_loss(model(x), y))

    return Problem(list(model.parameters()), loss, evaluate, module=model, hidden=_hidden_linear(model))


# ---------------------------------------------------------------------------------------- character language model

CONTEXT = 32


#: The pydoc text is cut into blocks of this many characters, each assigned to a role by a hash of its index.
TEXT_BLOCK = 2048


@cache
def _text() -> tuple[dict[str, Tensor], int]:
    """The pydoc topics that ship with Python, as one character stream (topics in sorted order; characters outside
    printable ASCII mapped to '?'), cut into blocks of :data:`TEXT_BLOCK` characters that go to train (80 %),
    validation (10 %) or test (10 %) by a stable hash of the block's index. Interleaved blocks make the validation and
    test text samples of the same distribution: a contiguous 80/10/10 split puts different topics, of different
    difficulty, in the two held-out parts, so a target set on validation would be a different bar on test."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[k] for k in sorted(topics))
    text = "".join(c if (32 <= ord(c) < 127 or c == "\n") else "?" for c in text)
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    parts: dict[str, list[Tensor]] = {"train": [], "validation": [], "test": []}
    for b, block in enumerate(ids.split(TEXT_BLOCK)):
        parts[held_out_role(f"block-{b}")].append(block)
    return {k: torch.cat(v) for k, v in parts.items()}, len(vocab)


class CharTransformer(nn.Module):
    """A small causal transformer: token + learned position embeddings, pre-norm encoder layers, a linear head."""

    def __init__(
        self, vocab: int, d_model: int = 64, heads: int = 4, layers: int = 2, context: int = CONTEXT, ff: int = 2
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Parameter(0.02 * torch.randn(context, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, ff * d_model, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, ids: Tensor) -> Tensor:
        n = ids.shape[1]
        h = self.embed(ids) + self.position[:n]
        h = self.blocks(h, mask=self.mask[:n, :n], is_causal=True)
        return self.head(self.norm(h))


def _windows(ids: Tensor, starts: Tensor, context: int = CONTEXT) -> tuple[Tensor, Tensor]:
    offsets = torch.arange(context + 1, device=starts.device)
    chunk = ids[starts[:, None] + offsets]
    return chunk[:, :-1], chunk[:, 1:]


def _language_model(
    splits: dict[str, Tensor], model: nn.Module, seed: int, device: str, batch: int, context: int, eval_windows: int
) -> Problem:
    """A next-token problem on token streams: random training windows; fixed validation and test windows (the same
    for every seed and optimizer)."""
    splits = {k: v.to(device) for k, v in splits.items()}
    gen = torch.Generator().manual_seed(40_000 + seed)
    fixed = torch.Generator().manual_seed(7)
    held = {}
    for k in SPLITS:
        starts = torch.randint(0, len(splits[k]) - context - 1, (eval_windows,), generator=fixed).to(device)
        held[k] = _windows(splits[k], starts, context)
    train = splits["train"]

    def loss(t: int) -> Tensor:
        starts = torch.randint(0, len(train) - context - 1, (batch,), generator=gen).to(device)
        x, y = _windows(train, starts, context)
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def evaluate(split: str = "validation") -> float:
        x, y = held[_check_split(split)]
        with torch.no_grad():
            return float(F.cross_entropy(model(x).flatten(0, 1), y.flatten()))

    hidden = [p for p in model.blocks.parameters() if p.ndim == 2]  # attention and feed-forward matrices
    return Problem(list(model.parameters()), loss, evaluate, module=model, hidden=hidden)


def _char_lm(seed: int, device: str = "cpu") -> Problem:
    splits, vocab = _text()
    torch.manual_seed(seed)
    model = CharTransformer(vocab).to(device)
    return _language_model(splits, model, seed, device, batch=16, context=CONTEXT, eval_windows=128)


# -------------------------------------------------------------------------------------- byte-level language model

#: The byte LM's shape by device: full size (4.8 M parameters) where a GPU is present, reduced on CPU.
BYTE_LM = {
    "cuda": {"d_model": 256, "heads": 8, "layers": 6, "context": 128, "batch": 32, "ff": 4},
    "cpu": {"d_model": 32, "heads": 4, "layers": 4, "context": 32, "batch": 16, "ff": 2},
}
#: Bytes of each split kept in memory (the standard library has ~30 MB of .py files outside site-packages).
BYTE_LM_BYTES = {"train": 16_000_000, "validation": 2_000_000, "test": 2_000_000}


def _stdlib_files() -> list[Path]:
    """The standard library's own .py files (no site-packages), in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and "dist-packages" not in p.parts)


def held_out_role(name: str) -> str:
    """The role of a file or text block by a stable hash of its name: 10 % validation, 10 % test, the rest train
    (the byte LM holds out by file, so no validation or test text shares a file with training text)."""
    bucket = zlib.crc32(name.encode()) % 10
    return "validation" if bucket == 0 else "test" if bucket == 1 else "train"


@cache
def _stdlib_bytes() -> dict[str, Tensor]:
    root = Path(sysconfig.get_paths()["stdlib"])
    parts: dict[str, list[bytes]] = {k: [] for k in BYTE_LM_BYTES}
    sizes = dict.fromkeys(BYTE_LM_BYTES, 0)
    for path in _stdlib_files():
        role = held_out_role(path.relative_to(root).as_posix())
        if sizes[role] >= BYTE_LM_BYTES[role]:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        parts[role].append(data)
        sizes[role] += len(data)
    out = {}
    for role, chunks in parts.items():
        blob = b"\0".join(chunks)[: BYTE_LM_BYTES[role]]  # NUL separates files (it never occurs in source)
        out[role] = torch.frombuffer(bytearray(blob), dtype=torch.uint8).long()
    return out


def _byte_lm(seed: int, device: str = "cpu") -> Problem:
    shape = BYTE_LM["cuda" if str(device).startswith("cuda") else "cpu"]
    torch.manual_seed(seed)
    model = CharTransformer(
        256, d_model=shape["d_model"], heads=shape["heads"], layers=shape["layers"], context=shape["context"],
        ff=shape["ff"],
    ).to(device)  # fmt: skip
    return _language_model(
        _stdlib_bytes(), model, seed, device, batch=shape["batch"], context=shape["context"], eval_windows=64
    )


# ---------------------------------------------------------------------------------------------------- registry

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            "rosenbrock-2d",
            "Rosenbrock function in 2-D from (−1.2, 1), exact gradients: a curved, ill-conditioned valley.",
            metric="loss",
            goal="min",
            target=1e-3,
            quick_target=5e-2,
            steps={"quick": 600, "full": 3000},
            eval_every={"quick": 10, "full": 10},
            build=_rosenbrock(2),
        ),
        Task(
            "rosenbrock-64d",
            "Chained Rosenbrock in 64-D, exact gradients.",
            metric="loss",
            goal="min",
            target=5e-2,
            quick_target=60.0,
            steps={"quick": 600, "full": 3000},
            eval_every={"quick": 10, "full": 10},
            build=_rosenbrock(64),
        ),
        Task(
            "noisy-quadratic",
            f"½ Σ hᵢ (xᵢ − x*ᵢ)² in {NQ_DIM}-D (start x₀ = x* + 1, x₀ ⟂ x₀ − x*) with curvatures over four "
            "decades and Gaussian gradient noise whose "
            "variances span four decades, permuted against the curvatures (κ not ∝ curvature).",
            metric="loss",
            goal="min",
            target=5e-2,
            quick_target=0.1,
            steps={"quick": 600, "full": 3000},
            eval_every={"quick": 10, "full": 10},
            build=_noisy_quadratic,
        ),
        Task(
            "logreg-digits",
            "Logistic regression on scikit-learn's 8×8 digits (standardised), minibatch 32; held-out accuracy.",
            metric="accuracy",
            goal="max",
            target=0.97,
            quick_target=0.95,
            steps={"quick": 300, "full": 1500},
            eval_every={"quick": 10, "full": 10},
            build=_classifier(_logistic, image=False),
        ),
        Task(
            "mlp-digits",
            "MLP 64-64-64-10 (tanh) on digits, minibatch 32; held-out accuracy.",
            metric="accuracy",
            goal="max",
            target=0.965,
            quick_target=0.95,
            steps={"quick": 300, "full": 1500},
            eval_every={"quick": 10, "full": 10},
            build=_classifier(_mlp, image=False),
        ),
        Task(
            "cnn-digits",
            "CNN (two 3×3 convolutions, 16 and 32 channels, then a linear layer) on 8×8 digits, minibatch 32; "
            "held-out accuracy.",
            metric="accuracy",
            goal="max",
            target=0.98,
            quick_target=0.955,
            steps={"quick": 300, "full": 1500},
            eval_every={"quick": 10, "full": 10},
            build=_classifier(_cnn, image=True),
        ),
        Task(
            "multiplication",
            "MLP 2-32-32-1 (tanh) learns y = x₁·x₂ on [−1, 1]² from 1024 samples, minibatch 32; held-out MSE.",
            metric="mse",
            goal="min",
            target=1e-4,
            quick_target=5e-4,
            steps={"quick": 600, "full": 3000},
            eval_every={"quick": 10, "full": 10},
            build=_multiplication,
        ),
        Task(
            "char-transformer",
            f"Character-level causal transformer (2 layers, d=64, 4 heads, context {CONTEXT}) on the pydoc topics "
            "text that ships with Python, minibatch 16; held-out cross-entropy (nats per character).",
            metric="held-out loss",
            goal="min",
            target=1.9,
            quick_target=2.55,
            steps={"quick": 200, "full": 600},
            eval_every={"quick": 25, "full": 25},
            build=_char_lm,
        ),
        Task(
            "byte-lm",
            "Byte-level causal transformer on the Python standard library's own .py files (held out by file: 10 % "
            "validation, 10 % test); 4 layers, d=32, context 32, minibatch 16 on CPU (52 k parameters), 6 layers, "
            "d=256, context 128, minibatch 32 with --device cuda (4.8 M); held-out cross-entropy (nats per byte).",
            metric="held-out loss",
            goal="min",
            target=2.35,
            quick_target=2.5,
            steps={"quick": 200, "full": 400},
            eval_every={"quick": 25, "full": 25},
            build=_byte_lm,
        ),
    ]
}


def task_names() -> list[str]:
    return list(TASKS)
