"""Transferability estimators: how well a model (or a source) will transfer to a target task, from one forward pass
over a labeled target sample, without training. Each is a pure, vectorised NumPy function in float64; higher is
better for every one of them.

- `logme`: LogME (You et al., ICML 2021), the log marginal evidence per row of a Bayesian linear model on the features;
- `leep`: LEEP (Nguyen et al., ICML 2020), the log expected empirical prediction of a source classifier's soft labels;
- `nce`: NCE (Tran et al., ICCV 2019), the negative conditional entropy of the target labels given the source labels;
- `h_score`: H-score (Bao et al., ICIP 2019), tr(cov(f)⁻¹ cov(E[f | y])).
"""

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class LogMEResult:
    """`score` (the mean over classes of evidence / rows) and, per class, the fixed point reached: `alpha`, `beta`,
    `evidence` (log p(y_c | F, α, β) / rows), the iterations run and whether each converged."""

    score: float
    alpha: np.ndarray
    beta: np.ndarray
    evidence: np.ndarray
    iterations: int
    converged: np.ndarray


def logme(features, labels, max_iterations: int = 100, tolerance: float = 1e-3, details: bool = False):
    r"""LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML 2021).

    For each class c, y_c ∈ {0, 1}ᴺ (one-hot column) is modelled as y_c = F w + ε, w ~ N(0, α⁻¹ I), ε ~ N(0, β⁻¹ I),
    with F the (N, D) features. The evidence is

        log p(y_c | F, α, β) = D/2 log α + N/2 log β − ½ log|A| − β/2 ‖y_c − F m‖² − α/2 mᵀm − N/2 log 2π,

    A = α I + β FᵀF, m = β A⁻¹ Fᵀ y_c. α and β are set by MacKay's fixed point: γ = Σ_i β σ_i / (α + β σ_i) (σ_i the
    eigenvalues of FᵀF), α ← γ / mᵀm, β ← (N − γ) / ‖y_c − F m‖², until α/β changes by less than `tolerance`
    (relative) or after `max_iterations` (a warning says which classes did not converge). Computed through one SVD of
    F for every class at once. LogME = the mean over classes of evidence / N.

    Args:
        features: (N, D) array. labels: (N,) integer class ids.
        details: return a `LogMEResult` (α, β, evidence per class, convergence) instead of the score alone.
    """
    features, onehot = _as_features(features), _one_hot(labels)
    onehot = onehot[:, onehot.sum(0) > 0]  # classes with rows only
    rows, dim = features.shape
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    sigma = s**2  # eigenvalues of FᵀF (the rank r = min(N, D) non-trivial ones)
    z = u.T @ onehot  # (r, C): the labels in the left singular basis
    outside = (onehot**2).sum(0) - (z**2).sum(0)  # ‖y − U Uᵀ y‖²: the part no weight can fit
    classes = onehot.shape[1]
    alpha, beta = np.ones(classes), np.ones(classes)
    converged = np.zeros(classes, dtype=bool)
    for iteration in range(1, max_iterations + 1):
        shrink = alpha + beta * sigma[:, None]  # (r, C)
        gamma = (beta * sigma[:, None] / shrink).sum(0)
        m_norm = (beta**2 * sigma[:, None] * z**2 / shrink**2).sum(0)  # mᵀm
        residual = outside + ((alpha * z / shrink) ** 2).sum(0)  # ‖y − F m‖²
        new_alpha, new_beta = gamma / np.maximum(m_norm, 1e-12), (rows - gamma) / np.maximum(residual, 1e-12)
        change = np.abs(new_alpha / new_beta - alpha / beta) / (alpha / beta)
        alpha = np.where(converged, alpha, new_alpha)
        beta = np.where(converged, beta, new_beta)
        converged |= change < tolerance
        if converged.all():
            break
    if not converged.all():
        warnings.warn(
            f"LogME's fixed point did not converge in {max_iterations} iterations for class(es) "
            f"{np.flatnonzero(~converged).tolist()}: the score uses the last α, β. Raise `max_iterations`.",
            stacklevel=2,
        )
    evidence = _evidence(alpha, beta, sigma, z, outside, rows, dim) / rows
    score = float(evidence.mean())
    if details:
        return LogMEResult(score, alpha, beta, evidence, iteration, converged)
    return score


def _evidence(alpha, beta, sigma, z, outside, rows: int, dim: int) -> np.ndarray:
    """log p(y_c | F, α, β) for every class (see `logme`), from the SVD quantities."""
    shrink = alpha + beta * sigma[:, None]
    m_norm = (beta**2 * sigma[:, None] * z**2 / shrink**2).sum(0)
    residual = outside + ((alpha * z / shrink) ** 2).sum(0)
    log_det = np.log(shrink).sum(0) + (dim - sigma.shape[0]) * np.log(alpha)  # log|A|: D − r eigenvalues are α
    return (dim / 2 * np.log(alpha) + rows / 2 * np.log(beta) - log_det / 2 - beta / 2 * residual
            - alpha / 2 * m_norm - rows / 2 * np.log(2 * np.pi))  # fmt: skip


def leep(source_probabilities, labels) -> float:
    r"""LEEP (Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned Representations", ICML 2020).

    θ(x_i) is the source classifier's distribution over its Z labels for target row i (`source_probabilities`,
    (N, Z), rows summing to 1). The empirical joint P̂(y, z) = (1/N) Σ_i θ(x_i)_z [y_i = y] gives
    P̂(y | z) = P̂(y, z) / P̂(z), and LEEP = (1/N) Σ_i log Σ_z P̂(y_i | z) θ(x_i)_z (≤ 0; 0: perfectly predictable).
    """
    theta = np.asarray(source_probabilities, dtype=np.float64)
    onehot = _one_hot(labels)
    if theta.ndim != 2 or theta.shape[0] != onehot.shape[0]:
        raise ValueError(
            f"`source_probabilities` must be (rows, source classes) with one row per label, got {theta.shape}."
        )
    if np.any(theta < 0) or not np.allclose(theta.sum(1), 1.0, atol=1e-4):
        raise ValueError(
            "`source_probabilities` must be probabilities (non-negative rows summing to 1): apply softmax."
        )
    joint = onehot.T @ theta / theta.shape[0]  # (Y, Z)
    conditional = joint / np.maximum(joint.sum(0, keepdims=True), 1e-300)  # P̂(y | z)
    expected = (theta @ conditional.T)[np.arange(theta.shape[0]), np.asarray(labels)]  # Σ_z P̂(y_i | z) θ(x_i)_z
    return float(np.log(np.maximum(expected, 1e-300)).mean())


def nce(source_labels, labels) -> float:
    r"""NCE (Tran et al., "Transferability and Hardness of Supervised Classification Tasks", ICCV 2019).

    With z_i the source classifier's label for target row i (`source_labels`, hard predictions) and y_i the target
    label: NCE = −H(Y | Z) = Σ_{y,z} P̂(y, z) log P̂(y | z), the empirical distributions over the N rows (≤ 0).
    """
    source, target = np.asarray(source_labels), np.asarray(labels)
    if source.shape != target.shape:
        raise ValueError(f"`source_labels` {source.shape} and `labels` {target.shape} must have one entry per row.")
    joint = _one_hot(target).T @ _one_hot(source) / target.shape[0]  # (Y, Z)
    marginal = joint.sum(0, keepdims=True)
    ratio = np.where(joint > 0, joint / np.where(marginal > 0, marginal, 1.0), 1.0)
    return float((joint * np.log(ratio)).sum())


def h_score(features, labels) -> float:
    r"""H-score (Bao et al., "An Information-Theoretic Approach to Transferability in Task Transfer Learning", ICIP
    2019): H(f) = tr(cov(f)⁻¹ cov(E_{P(x|y)}[f | y])), f the (N, D) features, the conditional expectation the mean of
    f over the rows of each row's class. The pseudo-inverse stands in for cov(f)⁻¹ when it is singular. Invariant
    under any invertible linear map of the features (scaling included)."""
    features = _as_features(features)
    labels = np.asarray(labels)
    centred = features - features.mean(0)
    covariance = centred.T @ centred / features.shape[0]
    classes, index = np.unique(labels, return_inverse=True)
    means = np.stack([centred[index == c].mean(0) for c in range(len(classes))])
    conditional = means[index]  # E[f | y_i] for every row
    between = conditional.T @ conditional / features.shape[0]
    return float(np.trace(np.linalg.pinv(covariance, rcond=1e-10, hermitian=True) @ between))


def _as_features(features) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"`features` must be (rows, dimensions) with at least 2 rows, got shape {features.shape}.")
    if not np.isfinite(features).all():
        raise ValueError("`features` has NaN or infinite values: check the model's outputs.")
    return features


def _one_hot(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
        raise ValueError("`labels` must be a 1-D array of class ids (integers >= 0).")
    onehot = np.zeros((labels.shape[0], int(labels.max()) + 1))
    onehot[np.arange(labels.shape[0]), labels] = 1.0
    return onehot
