"""DD-Ranking's scores (Li et al., "DD-Ranking: Rethinking the Evaluation of Dataset Distillation", arXiv
2505.13300; the formulas of its README and `ddranking/metrics/*.py`), computed here on accuracies given as
FRACTIONS in [0, 1].

- hard-label recovery HLR = acc(real training set, hard labels) - acc(distilled, hard labels): how far the
  distilled set is from the full data; lower is better.
- improvement over random IOR = acc(distilled) - acc(random real subset of the same IPC), both trained in the same
  label regime and recipe; higher is better.
- Label-Robust Score: alpha = w x IOR - (1 - w) x HLR, LRS = (e^alpha - e^-1) / (e - e^-1).
- Augmentation-Robust Score: beta = g x (acc(distilled, aug) - acc(random, aug)) + (1 - g) x (acc(distilled, no aug)
  - acc(random, no aug)), ARS = (e^beta - e^-1) / (e - e^-1); "aug" = the recipe's training augmentation (and
  mixing), "no aug" = the same recipe without any.

With fractions, alpha and beta lie in [-1, 1] and the scores in [0, 1] (0 at -1, 1 at +1; alpha = 0, a distilled set
as far above random as below the full data, scores 0.27). The ddranking package (0.2.0) feeds percentages into
the same formulas, so its alpha spans [-100, 100] and the "normalised" score is no longer in [0, 1] (HLR 10, IOR 30
gives 9,371): these functions refuse values outside [0, 1] (accuracies) or [-1, 1] (HLR, IOR), naming the fix.
Both scores compare sets only under the same evaluation protocol: another recipe moves every accuracy in them.
"""

from __future__ import annotations

import math

DEFAULT_WEIGHT = 0.5
_E, _EINV = math.e, math.exp(-1.0)


def _fraction(name: str, value: float, low: float = 0.0) -> float:
    v = float(value)
    if math.isnan(v):
        return v
    if not low <= v <= 1.0:
        hint = " (a percentage? pass fractions: 0.734, not 73.4)" if abs(v) > 1 else ""
        raise ValueError(f"{name} = {v} is outside [{low:g}, 1]{hint}. DD-Ranking's scores take fractions.")
    return v


def _weight(name: str, w: float) -> float:
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"{name} = {w}: a weight in [0, 1] (DD-Ranking's default is 0.5)")
    return float(w)


def normalise(x: float) -> float:
    """(e^x - e^-1) / (e - e^-1): maps [-1, 1] onto [0, 1]."""
    return (math.exp(x) - _EINV) / (_E - _EINV)


def hard_label_recovery(acc_real_hard: float, acc_distilled_hard: float) -> float:
    """HLR = acc(real, hard) - acc(distilled, hard), fractions."""
    return _fraction("acc(real, hard)", acc_real_hard) - _fraction("acc(distilled, hard)", acc_distilled_hard)


def improvement_over_random(acc_distilled: float, acc_random: float) -> float:
    """IOR = acc(distilled) - acc(random subset), same regime and recipe, fractions."""
    return _fraction("acc(distilled)", acc_distilled) - _fraction("acc(random subset)", acc_random)


def label_robust_score(hlr: float, ior: float, weight: float = DEFAULT_WEIGHT) -> float:
    """LRS = normalise(w x IOR - (1 - w) x HLR) for HLR and IOR as fractions (in [-1, 1])."""
    w = _weight("LRS weight", weight)
    alpha = w * _fraction("IOR", ior, -1.0) - (1 - w) * _fraction("HLR", hlr, -1.0)
    return normalise(alpha)


def augmentation_robust_score(
    distilled_aug: float, random_aug: float, distilled_noaug: float, random_noaug: float, weight: float = DEFAULT_WEIGHT
) -> float:
    """ARS = normalise(g x (distilled - random, with aug) + (1 - g) x (distilled - random, without)), fractions."""
    g = _weight("ARS weight", weight)
    with_aug = _fraction("acc(distilled, aug)", distilled_aug) - _fraction("acc(random, aug)", random_aug)
    without = _fraction("acc(distilled, no aug)", distilled_noaug) - _fraction("acc(random, no aug)", random_noaug)
    return normalise(g * with_aug + (1 - g) * without)
