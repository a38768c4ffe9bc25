"""The label-free validators against references computed independently of the library: closed forms on Gaussians
whose densities are known, and the formulas written out in NumPy / SciPy on small fixed cases."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy
from scipy.stats import norm

from hf_transfer.evaluation.selection import (
    deep_embedded_validation,
    label_free_validators,
    proxy_a_distance,
)


def gaussian_domains(n_source: int, n_target: int, shift: float, seed: int = 0):
    """1-D source N(0, 1) and target N(shift, 1): the density ratio p_t / p_s = exp(shift·x − shift²/2) is known."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (n_source, 1)), rng.normal(shift, 1.0, (n_target, 1))


@pytest.mark.parametrize("n_source, n_target", [(4000, 1000), (1000, 4000)])
def test_dev_estimates_the_target_risk_of_a_known_shift_with_unequal_domain_sizes(n_source, n_target):
    """Source x ~ N(0, 1), target x ~ N(1, 1), loss(x) = x + 3: the target risk is E_t[x + 3] = 4 exactly, while the
    source risk is 3. The importance weights must carry p_t/p_s (not its inverse) and the n_s/n_t factor: with
    unequal sizes a missing or inverted factor scales the weights by 4 or 16, which the control variate does not
    undo for a loss that varies with x (the estimate lands near −3.7 or −22.7)."""
    source, target = gaussian_domains(n_source, n_target, shift=1.0)
    losses = source[:, 0] + 3.0
    assert losses.mean() == pytest.approx(3.0, abs=0.1)
    assert deep_embedded_validation(source, losses, target) == pytest.approx(4.0, abs=0.2)


def test_dev_equals_the_formula_with_the_true_density_ratio_when_the_classifier_is_exact():
    """The same DEV written out with the known ratio w = exp(x − 1/2): the library's fitted weights come within a
    few percent of it, so the two estimates agree closely."""
    source, target = gaussian_domains(4000, 1000, shift=1.0, seed=1)
    losses = source[:, 0] + 3.0
    w = np.exp(source[:, 0] - 0.5)
    weighted = w * losses
    eta = -np.cov(weighted, w)[0, 1] / w.var(ddof=1)
    reference = weighted.mean() + eta * (w.mean() - 1.0)
    assert deep_embedded_validation(source, losses, target) == pytest.approx(reference, abs=0.1)


def test_proxy_a_distance_of_two_gaussians_is_the_bayes_error_formula():
    """N(0, 1) against N(2, 1): a linear classifier's held-out error tends to the Bayes error Φ(−1) = 0.1587, so the
    proxy A-distance tends to 2(1 − 2Φ(−1)) = 1.365."""
    source, target = gaussian_domains(4000, 4000, shift=2.0)
    assert proxy_a_distance(source, target) == pytest.approx(2 * (1 - 2 * norm.cdf(-1.0)), abs=0.08)


def test_proxy_a_distance_scores_held_out_rows_not_the_rows_it_fitted():
    """200-dimensional noise from one distribution as both domains: 100 + 100 training rows are linearly separable
    by memorising them (PAD 2 on the training rows), but held out they are not (PAD near 0)."""
    rng = np.random.default_rng(0)
    source, target = rng.normal(size=(200, 200)), rng.normal(size=(200, 200))
    assert proxy_a_distance(source, target) < 0.5


def test_proxy_a_distance_subsamples_the_larger_domain():
    """Same distribution, 3 source rows for each target row: without subsampling to equal sizes, predicting
    'source' everywhere scores an error of 0.25, a PAD of 1."""
    rng = np.random.default_rng(0)
    assert proxy_a_distance(rng.normal(size=(1200, 2)), rng.normal(size=(400, 2))) < 0.3


def numpy_softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def snd_reference(logits: np.ndarray, temperature: float) -> float:
    """SND written out row by row (Saito et al. 2021, eq. 1–3)."""
    probs = numpy_softmax(logits)
    probs = probs / np.linalg.norm(probs, axis=1, keepdims=True)
    values = []
    for i in range(len(probs)):
        similarity = np.array([probs[i] @ probs[j] for j in range(len(probs)) if j != i]) / temperature
        weights = np.exp(similarity - similarity.max())
        weights /= weights.sum()
        values.append(scipy_entropy(weights))
    return float(np.mean(values))


def test_label_free_validators_feed_each_validator_the_right_inputs():
    """Every value of `label_free_validators` against an independent computation from the same outputs; source and
    target features differ in scale so that swapping them would change DEV and the proxy A-distance."""
    rng = np.random.default_rng(0)
    source_logits, target_logits = rng.normal(size=(60, 3)) * 2, rng.normal(size=(50, 3))
    source_labels = rng.integers(0, 3, 60)
    source_features, target_features = rng.normal(size=(60, 4)), rng.normal(1.0, 2.0, size=(50, 4))
    scores = label_free_validators(
        source_logits, source_labels, source_features, target_logits, target_features, snd_temperature=0.1, seed=3
    )

    source_probs, target_probs = numpy_softmax(source_logits), numpy_softmax(target_logits)
    cross_entropy = -np.log(source_probs[np.arange(60), source_labels])
    expected = {
        "source_accuracy": float(np.mean(source_logits.argmax(1) == source_labels)),
        "target_entropy": float(np.mean([scipy_entropy(p) for p in target_probs])),
        "im": float(scipy_entropy(target_probs.mean(0)) - np.mean([scipy_entropy(p) for p in target_probs])),
        "snd": snd_reference(target_logits, 0.1),
        "dev": deep_embedded_validation(source_features, cross_entropy, target_features, seed=3),
        "proxy_a_distance": proxy_a_distance(source_features, target_features, seed=3),
    }
    assert set(scores) == set(expected)
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    swapped = deep_embedded_validation(target_features[:50], cross_entropy[:50], source_features, seed=3)
    assert not math.isclose(swapped, scores["dev"], rel_tol=1e-3)


def test_minimum_class_confusion_penalises_a_hard_collapse_at_any_margin():
    """All rows predicted as class 0 with a margin of 100 (p_1 ≈ e^-40 after the temperature): the exact MCC is
    close to 1/C = 0.5 (class 1's column, normalised, is all confusion), far from the 0 of confident and diverse
    predictions. A clamp of the column sums at 1e-12 once scored this collapse 0."""
    from hf_transfer.domain_adaptation.losses import minimum_class_confusion_loss

    collapse = torch.tensor([[100.0, 0.0]] * 8)
    diverse = torch.tensor([[100.0, 0.0], [0.0, 100.0]] * 4)
    assert minimum_class_confusion_loss(collapse).item() == pytest.approx(0.5, abs=1e-3)
    assert minimum_class_confusion_loss(diverse).item() == pytest.approx(0.0, abs=1e-6)
    for margin in (5.0, 20.0, 74.0, 150.0, 500.0):
        assert minimum_class_confusion_loss(torch.tensor([[margin, 0.0]] * 8)).item() > 0.45, margin
