"""Fidelity and diversity of a set of images against the real test split, on feature vectors (a classifier's
penultimate layer; no Inception weights offline):

- precision, recall, density and coverage (Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative
  Models", ICML 2020), by the authors' `prdc` package (clovaai/generative-evaluation-prdc): k-nearest-neighbour
  balls around the real and the set's features. Precision: the fraction of the set's images inside some real
  ball (fidelity); recall: the fraction of real images inside some ball of the set (diversity); density: how many
  real balls hold a set image, on average, / k (fidelity, > 1 when images crowd the dense regions); coverage: the
  fraction of real images whose ball holds a set image (diversity, robust to outliers). k = `nearest_k`.
- the Frechet distance ||mu_r - mu_s||^2 + Tr(S_r + S_s - 2 (S_r S_s)^(1/2)) between Gaussians fitted to the two
  feature sets (FID's formula on these features instead of Inception's), computed here exactly through the
  singular values of an N x M matrix: torchmetrics' FrechetInceptionDistance takes a custom feature extractor, but
  computes the eigenvalues of a D x D product (4 s per set at D = 2048 on one idle core, over 30 s on a busy one)
  and imports torchvision and lightning's utilities to do it (tests/test_fidelity.py checks this against values
  worked out by hand and against the matrix square root).

Both depend on the number of images (the Frechet distance is biased upward for small sets; recall and coverage
grow with the set's size): compare sets of equal size, as the IPC-matched sets of a run are.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np

METRICS = ("precision", "recall", "density", "coverage", "frechet_distance")


def prdc(real: np.ndarray, fake: np.ndarray, nearest_k: int) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` [M, D] against `real` [N, D] (prdc.compute_prdc). Recall
    needs each fake image's k-th neighbour among the fake ones: NaN when M <= k (the other three use only the
    real balls)."""
    from prdc import prdc as ref  # deferred: scikit-learn; only the fidelity job measures

    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    if len(real) <= nearest_k:
        raise ValueError(f"{len(real)} real images, too few for nearest_k {nearest_k} (needs more than k)")
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the two counts
        if len(fake) > nearest_k:
            return {k: float(v) for k, v in ref.compute_prdc(real, fake, nearest_k).items()}
        radii = ref.compute_nearest_neighbour_distances(real, nearest_k)
        d = ref.compute_pairwise_distance(real, fake)  # [N, M]
    inside = d < radii[:, None]
    return {
        "precision": float(inside.any(axis=0).mean()),
        "recall": math.nan,
        "density": float(inside.sum(axis=0).mean() / nearest_k),
        "coverage": float((d.min(axis=1) < radii).mean()),
    }


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """The Frechet distance ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)) between Gaussians fitted to
    `real` [N, D] and `fake` [M, D] (covariances with n - 1), in float64.

    With A = (real - mu_r) / sqrt(N - 1) and B likewise, S_r = A^T A and S_f = B^T B, so the eigenvalues of S_r S_f
    are the squared singular values of A B^T [N, M] and Tr((S_r S_f)^(1/2)) is its nuclear norm: exact, and an
    N x M problem instead of FID implementations' D x D matrix square root (D = 2048 for the ConvNet at 32 px)."""
    r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if len(r) < 2 or len(f) < 2:
        return math.nan
    a = (r - r.mean(0)) / math.sqrt(len(r) - 1)
    b = (f - f.mean(0)) / math.sqrt(len(f) - 1)
    cross = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    mean_term = float(((r.mean(0) - f.mean(0)) ** 2).sum())
    return mean_term + float((a * a).sum() + (b * b).sum() - 2.0 * cross)


def measure(real: np.ndarray, fake: np.ndarray, nearest_k: int) -> dict[str, float]:
    """Every metric of METRICS for one set."""
    return {**prdc(real, fake, nearest_k), "frechet_distance": frechet_distance(real, fake)}


def capped(n: int, cap: int, seed: int = 0) -> np.ndarray:
    """Indices of at most `cap` of n items: all, or a seeded subset in ascending order."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 4049]).choice(n, cap, replace=False))


DISPLAY_NOTE = (
    "Against the real test split, in the feature space named above (a classifier's penultimate layer). Precision "
    "and density: fidelity (the set's images lie where real images are; density > 1 when they crowd the dense "
    "regions); recall and coverage: diversity (the real images the set's neighbourhoods reach). Naeem et al., ICML "
    "2020 (prdc), k nearest neighbours as given. Frechet distance: lower is closer (FID's formula on these "
    "features). All depend on the number of images: compare sets of equal size. The random subset's row is the "
    "mean over the draws of the evaluation seeds (std beside it); the full set is the real training split."
)


def display_frame(table):
    """The fidelity table as the report shows it: per set its images and each metric (mean +- std over the
    random subset's draws)."""
    import pandas as pd

    out = pd.DataFrame({"set": table["set"], "images": table["n_images"], "draws": table["n_draws"]})
    for m in METRICS:
        std = table.get(f"{m}_std")
        out[m.replace("_", " ")] = [
            f"{v:.3f}" + (f" +- {s:.3f}" if s is not None and math.isfinite(s) else "") if math.isfinite(v) else ""
            for v, s in zip(table[m], std if std is not None else [None] * len(table))
        ]
    return out
