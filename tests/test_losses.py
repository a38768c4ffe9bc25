import math

import pytest
import torch
import torch.nn.functional as F

from hf_transfer.domain_adaptation.losses import (
    DomainDiscriminator,
    coral_loss,
    dann_coefficient,
    domain_adversarial_loss,
    gaussian_kernel_bandwidths,
    gradient_reversal,
    mmd_loss,
)


def test_gradient_reversal_is_identity_forward_and_negates_scaled_gradient_backward():
    x = torch.randn(5, 3, requires_grad=True)
    y = gradient_reversal(x, coefficient=0.7)
    assert torch.equal(y, x)
    upstream = torch.randn(5, 3)
    y.backward(upstream)
    torch.testing.assert_close(x.grad, -0.7 * upstream)


@pytest.mark.parametrize(
    "progress, expected",
    [(0.0, 0.0), (0.5, 2.0 / (1.0 + math.exp(-5.0)) - 1.0), (1.0, 2.0 / (1.0 + math.exp(-10.0)) - 1.0)],
)
def test_ganin_schedule_values(progress, expected):
    assert dann_coefficient(progress, "ganin", gamma=10.0) == pytest.approx(expected)


def test_ganin_schedule_known_numbers_and_constant_schedule():
    assert dann_coefficient(0.5) == pytest.approx(0.986614298, abs=1e-8)  # 2/(1+e^-5)-1
    assert dann_coefficient(1.0) == pytest.approx(0.999909204, abs=1e-8)  # 2/(1+e^-10)-1
    assert dann_coefficient(0.5, "ganin", max_value=0.5) == pytest.approx(0.5 * 0.986614298)
    assert dann_coefficient(0.0, "constant", max_value=0.3) == 0.3
    assert dann_coefficient(1.0, "constant", max_value=0.3) == 0.3


def test_domain_adversarial_loss_matches_hand_written_reference():
    torch.manual_seed(0)
    discriminator = DomainDiscriminator(4, hidden_size=8, num_hidden_layers=1, dropout=0.0)
    source, target = torch.randn(3, 4), torch.randn(5, 4)
    loss, accuracy = domain_adversarial_loss(discriminator, source, target, coefficient=1.0)

    logits = discriminator(torch.cat([source, target]))
    labels = torch.tensor([0.0] * 3 + [1.0] * 5)
    probabilities = torch.sigmoid(logits)
    reference = -(labels * probabilities.log() + (1 - labels) * (1 - probabilities).log()).mean()
    torch.testing.assert_close(loss, reference)
    assert accuracy.item() == pytest.approx(((logits > 0).float() == labels).float().mean().item())


def test_domain_adversarial_loss_reverses_gradient_into_features_but_not_into_discriminator():
    torch.manual_seed(0)
    discriminator = DomainDiscriminator(4, hidden_size=8, num_hidden_layers=1, dropout=0.0)
    source = torch.randn(3, 4, requires_grad=True)
    target = torch.randn(3, 4, requires_grad=True)
    loss, _ = domain_adversarial_loss(discriminator, source, target, coefficient=0.5)
    loss.backward()
    reversed_grad = source.grad.clone()
    discriminator_grad = discriminator.layers[0].weight.grad.clone()

    source.grad = None
    discriminator.zero_grad()
    plain = F.binary_cross_entropy_with_logits(
        discriminator(torch.cat([source, target])), torch.tensor([0.0] * 3 + [1.0] * 3)
    )
    plain.backward()
    torch.testing.assert_close(reversed_grad, -0.5 * source.grad)
    torch.testing.assert_close(discriminator_grad, discriminator.layers[0].weight.grad)


def _reference_mmd(source, target, bandwidths, unbiased):
    def k(a, b):
        return sum(math.exp(-float(((a - b) ** 2).sum()) / s) for s in bandwidths) / len(bandwidths)

    n, m = len(source), len(target)
    if unbiased:
        ss = sum(k(source[i], source[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        tt = sum(k(target[i], target[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    else:
        ss = sum(k(source[i], source[j]) for i in range(n) for j in range(n)) / (n * n)
        tt = sum(k(target[i], target[j]) for i in range(m) for j in range(m)) / (m * m)
    st = sum(k(source[i], target[j]) for i in range(n) for j in range(m)) / (n * m)
    return ss + tt - 2 * st


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_mmd_matches_hand_written_reference(estimator):
    torch.manual_seed(0)
    source, target = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64) + 0.5
    multipliers = (0.5, 1.0, 2.0)
    pooled = torch.cat([source, target])
    distances = [float(((pooled[i] - pooled[j]) ** 2).sum()) for i in range(9) for j in range(9) if i != j]
    median = torch.tensor(distances).median().item()
    bandwidths = [median * m for m in multipliers]
    torch.testing.assert_close(
        gaussian_kernel_bandwidths(source, target, multipliers).double(), torch.tensor(bandwidths, dtype=torch.float64)
    )
    expected = _reference_mmd(source, target, bandwidths, unbiased=estimator == "unbiased")
    assert mmd_loss(source, target, multipliers, estimator).item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_mmd_is_near_zero_for_identical_distributions_and_grows_with_shift():
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(256, 16, generator=generator)
    same = torch.randn(256, 16, generator=generator)
    values = [mmd_loss(source, same + shift).item() for shift in (0.0, 0.25, 0.5, 1.0)]
    assert abs(values[0]) < 2e-3
    assert values[0] < values[1] < values[2] < values[3]
    assert values[1] > 10 * abs(values[0])
    # the biased estimator is exactly zero on identical batches
    assert mmd_loss(source, source.clone(), estimator="biased").item() == pytest.approx(0.0, abs=1e-6)


def test_coral_matches_hand_written_reference():
    torch.manual_seed(0)
    source, target = torch.randn(6, 3, dtype=torch.float64), 2 * torch.randn(7, 3, dtype=torch.float64)

    def covariance(x):
        centered = x - x.mean(0, keepdim=True)
        return centered.T @ centered / (x.shape[0] - 1)

    expected = ((covariance(source) - covariance(target)) ** 2).sum() / (4 * 3 * 3)
    torch.testing.assert_close(coral_loss(source, target).double(), expected)


def test_coral_is_near_zero_for_identical_distributions_and_grows_with_scale():
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(2048, 8, generator=generator)
    same = torch.randn(2048, 8, generator=generator)
    values = [coral_loss(source, same * scale).item() for scale in (1.0, 1.5, 2.0, 3.0)]
    assert values[0] < 1e-3
    assert values[0] < values[1] < values[2] < values[3]
    assert coral_loss(source, source + 5.0).item() == pytest.approx(0.0, abs=1e-6)  # a shift of the mean is not seen


def test_losses_are_autocast_safe():
    """Under bf16 autocast, on bf16 inputs, each loss computes in float32: its value equals the float32 computation
    on the same (bf16-rounded) inputs, where a bf16 computation would be off by about 1e-2 relative."""
    from hf_transfer import information_maximization_loss, minimum_class_confusion_loss

    generator = torch.Generator().manual_seed(0)
    source, target = (
        torch.randn(16, 8, generator=generator).bfloat16(),
        torch.randn(16, 8, generator=generator).bfloat16(),
    )
    source, target = source * 3, target * 3 + 1
    logits = (torch.randn(16, 3, generator=generator) * 4).bfloat16()
    cases = {
        "mmd": lambda s, t, g: mmd_loss(s, t),
        "coral": lambda s, t, g: coral_loss(s, t),
        "im": lambda s, t, g: information_maximization_loss(g),
        "mcc": lambda s, t, g: minimum_class_confusion_loss(g),
    }
    for name, loss in cases.items():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = loss(source, target, logits)
        reference = loss(source.float(), target.float(), logits.float())
        assert mixed.dtype == torch.float32, name
        assert mixed.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-6), name


def test_information_maximization_matches_hand_written_reference_and_prefers_confident_diverse_predictions():
    from hf_transfer import information_maximization_loss

    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    probs = logits.softmax(dim=1)
    conditional = sum(-(p * p.log()).sum() for p in probs) / 6
    mean = probs.mean(dim=0)
    expected = conditional + (mean * mean.log()).sum()
    torch.testing.assert_close(information_maximization_loss(logits), expected)
    confident_diverse = torch.eye(3)[[0, 1, 2, 0, 1, 2]] * 30.0
    collapsed = torch.eye(3)[[0] * 6] * 30.0
    assert information_maximization_loss(confident_diverse) == pytest.approx(-math.log(3), abs=1e-6)
    assert information_maximization_loss(collapsed) == pytest.approx(0.0, abs=1e-6)
    logits.requires_grad_(True)
    information_maximization_loss(logits).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_minimum_class_confusion_matches_hand_written_reference():
    from hf_transfer import minimum_class_confusion_loss

    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    probs = (logits / 2.5).softmax(dim=1)
    weights = torch.stack([1 + torch.exp((p * p.log()).sum()) for p in probs])
    weights = 6 * weights / weights.sum()
    confusion = torch.zeros(3, 3)
    for j in range(3):
        for k in range(3):
            confusion[j, k] = sum(weights[i] * probs[i, j] * probs[i, k] for i in range(6))
    normalised = confusion / confusion.sum(dim=0)  # each column (= row: the matrix is symmetric) sums to 1
    expected = sum(normalised[j, k] for j in range(3) for k in range(3) if j != k) / 3
    torch.testing.assert_close(minimum_class_confusion_loss(logits), expected)
    torch.testing.assert_close(
        minimum_class_confusion_loss(logits, temperature=1.0),
        minimum_class_confusion_loss(logits * 2.5),  # the temperature divides the logits
    )


def test_minimum_class_confusion_prefers_confident_diverse_predictions_to_collapse_and_uncertainty():
    from hf_transfer import minimum_class_confusion_loss

    confident_diverse = torch.eye(3)[[0, 1, 2, 0, 1, 2]] * 60.0
    collapsed = torch.eye(3)[[0] * 6] * 60.0
    assert minimum_class_confusion_loss(confident_diverse) == pytest.approx(0.0, abs=1e-6)
    assert minimum_class_confusion_loss(torch.zeros(6, 3)) == pytest.approx(2 / 3)  # uniform: (C - 1) / C
    assert minimum_class_confusion_loss(collapsed) == pytest.approx(2 / 3, abs=1e-3)  # every row confused with 0
    assert torch.isfinite(minimum_class_confusion_loss(torch.eye(3)[[0] * 6] * 1e4))  # a class no row predicts
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    minimum_class_confusion_loss(logits).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert minimum_class_confusion_loss(logits.bfloat16()).dtype == torch.float32
