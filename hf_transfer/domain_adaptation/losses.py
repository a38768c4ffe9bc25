"""The losses of unsupervised domain adaptation, and `ADAPTATION_LOSSES`, the table the trainer reads them from.

Alignment of the pooled features of source `(n, d)` and target `(m, d)` rows: DANN (gradient reversal + domain
discriminator), multi-kernel MMD (DAN), CORAL. Shaping of the target predictions `(m, C)`: information maximisation
(IM), minimum class confusion (MCC). Each is a pure, vectorised, autocast-safe function (statistics in float32) with
its formula and paper in the docstring; the only stateful piece, the domain discriminator, is a small `nn.Module`.
At the end of the file, one `LossSpec` per loss says how `DomainAdaptationTrainer` uses it.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..hub.model_card import Method
from ..loss_spec import LossInputs, LossSpec


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.coefficient * grad_output, None


def gradient_reversal(features: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    """Gradient reversal layer (Ganin & Lempitsky, ICML 2015): identity forward, `-coefficient * grad` backward."""
    return _GradientReversal.apply(features, coefficient)


def dann_coefficient(progress: float, schedule: str = "ganin", gamma: float = 10.0, max_value: float = 1.0) -> float:
    """The gradient-reversal coefficient λ at training progress `p = global_step / max_steps`.

    `"ganin"` (Ganin et al., JMLR 2016, §5.2.2): λ_p = max_value · (2 / (1 + exp(-γ·p)) - 1), which rises
    from 0 at p = 0 to ≈ max_value at p = 1 (0.9866 · max_value for γ = 10), so the discriminator's noisy
    early signal does not disturb the features. `"constant"`: λ = max_value throughout.
    """
    if schedule == "constant":
        return max_value
    if schedule == "ganin":
        progress = min(max(progress, 0.0), 1.0)
        return max_value * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)
    raise ValueError(f"Unknown DANN schedule {schedule!r}: use 'ganin' or 'constant'.")


class DomainDiscriminator(nn.Module):
    """MLP that predicts the domain of a feature vector (logit > 0: target).

    `in_features → hidden_size → … → 1` with ReLU and dropout between layers, as in DANN (Ganin et al., 2016)
    and Transfer-Learning-Library's `DomainDiscriminator`, but without batch normalisation so that the loss of
    a batch is the mean of per-example losses (which keeps gradient accumulation exact).
    """

    def __init__(self, in_features: int, hidden_size: int = 1024, num_hidden_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_size
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(-1)


def domain_adversarial_loss(
    discriminator: nn.Module, source: torch.Tensor, target: torch.Tensor, coefficient: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """DANN loss (Ganin et al., JMLR 2016).

    L = mean over the n + m rows of BCE(D(GRL_λ(f)), d), with domain label d = 0 for source and 1 for target.
    Minimising L trains the discriminator D to tell the domains apart, while the gradient reversal layer
    makes the feature extractor maximise it, pushing source and target features together.

    Args:
        discriminator: maps `(k, d)` features to `(k,)` domain logits.
        source: `(n, d)` source features. target: `(m, d)` target features.
        coefficient: λ, the gradient-reversal coefficient.

    Returns:
        The loss (scalar) and the discriminator's accuracy on the batch (scalar, no gradient).
    """
    # features from a bf16/fp16 forward meet the discriminator in its own dtype (it runs outside the model's autocast)
    features = torch.cat([source, target], dim=0).to(next(discriminator.parameters()).dtype)
    domain_labels = torch.cat([source.new_zeros(source.shape[0]), source.new_ones(target.shape[0])])
    logits = discriminator(gradient_reversal(features, coefficient))
    loss = F.binary_cross_entropy_with_logits(logits.float(), domain_labels.float())
    accuracy = ((logits.detach() > 0).float() == domain_labels).float().mean()
    return loss, accuracy


def _pairwise_squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, y, p=2.0).pow(2)


def gaussian_kernel_bandwidths(
    source: torch.Tensor, target: torch.Tensor, multipliers: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
) -> torch.Tensor:
    """Bandwidths σ²_k = multiplier_k · median of the pairwise squared distances of the pooled batch.

    The median heuristic (Gretton et al., 2012) is computed without gradient, so the bandwidths adapt to
    the scale of the features but are not optimised to shrink the loss.
    """
    with torch.no_grad():
        pooled = torch.cat([source, target], dim=0).float()
        distances = _pairwise_squared_distances(pooled, pooled)
        off_diagonal = distances[~torch.eye(pooled.shape[0], dtype=torch.bool, device=pooled.device)]
        median = off_diagonal.median().clamp_min(1e-8)
    return median * torch.tensor(multipliers, device=source.device, dtype=torch.float32)


def mmd_loss(
    source: torch.Tensor,
    target: torch.Tensor,
    kernel_multipliers: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0),
    estimator: str = "unbiased",
) -> torch.Tensor:
    """Multi-kernel maximum mean discrepancy MMD² (DAN, Long et al., ICML 2015).

    k(x, y) = (1/K) Σ_k exp(-‖x - y‖² / σ²_k), a uniform mixture of K Gaussian kernels whose bandwidths σ²_k
    come from `gaussian_kernel_bandwidths`. With Kxx (n×n), Kyy (m×m) and Kxy (n×m):

    - `"unbiased"` (U-statistic, Gretton et al. 2012, eq. 3): the diagonals of Kxx and Kyy are left out,
      MMD²_u = Σ_{i≠j} Kxx/(n(n-1)) + Σ_{i≠j} Kyy/(m(m-1)) - 2 Σ Kxy/(nm). Its expectation is 0 when both
      batches come from the same distribution (single draws can be slightly negative).
    - `"biased"` (V-statistic): MMD²_b = mean(Kxx) + mean(Kyy) - 2 mean(Kxy) ≥ 0; exactly 0 for identical batches.

    Shapes: source `(n, d)`, target `(m, d)`, n, m ≥ 2. Returns a scalar.
    """
    with torch.autocast(device_type=source.device.type, enabled=False):
        return _mmd_float32(source.float(), target.float(), kernel_multipliers, estimator)


def _mmd_float32(source, target, kernel_multipliers, estimator) -> torch.Tensor:
    bandwidths = gaussian_kernel_bandwidths(source, target, kernel_multipliers)

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        distances = _pairwise_squared_distances(a, b)
        return torch.exp(-distances.unsqueeze(0) / bandwidths.view(-1, 1, 1)).mean(0)

    k_ss, k_tt, k_st = kernel(source, source), kernel(target, target), kernel(source, target)
    n, m = source.shape[0], target.shape[0]
    if estimator == "biased":
        return k_ss.mean() + k_tt.mean() - 2.0 * k_st.mean()
    if estimator == "unbiased":
        within_source = (k_ss.sum() - k_ss.diagonal().sum()) / (n * (n - 1))
        within_target = (k_tt.sum() - k_tt.diagonal().sum()) / (m * (m - 1))
        return within_source + within_target - 2.0 * k_st.mean()
    raise ValueError(f"Unknown MMD estimator {estimator!r}: use 'unbiased' or 'biased'.")


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL loss (Sun & Saenko, ECCV-W 2016): ‖C_S - C_T‖²_F / (4 d²).

    C_S and C_T are the unbiased `(d, d)` feature covariances of source `(n, d)` and target `(m, d)`, n, m ≥ 2.
    """
    with torch.autocast(device_type=source.device.type, enabled=False):
        source, target = source.float(), target.float()
        d = source.shape[1]
        difference = torch.cov(source.T) - torch.cov(target.T)
        return difference.pow(2).sum() / (4.0 * d * d)


def information_maximization_loss(target_logits: torch.Tensor) -> torch.Tensor:
    """Information maximisation on unlabeled target rows (Shi & Sha, ICML 2012; SHOT, Liang et al., ICML 2020):
    mean_i H(p_i) − H(mean_i p_i), to be minimised.

    The first term makes each target prediction confident, the second keeps the predicted classes diverse (without
    it, entropy minimisation collapses onto one class). `target_logits` is `(m, C)`, m ≥ 1.
    """
    with torch.autocast(device_type=target_logits.device.type, enabled=False):
        log_probs = torch.log_softmax(target_logits.float(), dim=1)
        probs = log_probs.exp()
        conditional = -(probs * log_probs).sum(dim=1).mean()
        mean = probs.mean(dim=0)
        marginal = -(mean * torch.log(mean.clamp_min(1e-12))).sum()
        return conditional - marginal


def minimum_class_confusion_loss(target_logits: torch.Tensor, temperature: float = 2.5) -> torch.Tensor:
    """Minimum class confusion (MCC, Jin et al., ECCV 2020) on unlabeled target rows, to be minimised.

    With p = softmax(logits / temperature), rows weighted by w_i ∝ 1 + exp(−H(p_i)) (confident rows count more,
    Σ w_i = m), the class confusion matrix C = pᵀ diag(w) p is normalised per class (each column divided by its sum)
    and the loss is the normalised confusion between different classes, (Σ C̃ − trace C̃) / C. It is 0 when every
    row is predicted with certainty and (C − 1) / C when every prediction is uniform. Unlike entropy minimisation it
    does not reward putting every row in one class. `target_logits` is `(m, C)`, m ≥ 1, C ≥ 2.
    """
    with torch.autocast(device_type=target_logits.device.type, enabled=False):
        rows, classes = target_logits.shape
        probs = torch.softmax(target_logits.float() / temperature, dim=1)
        entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1).detach()
        weights = 1.0 + torch.exp(-entropy)
        weights = rows * weights / weights.sum()
        confusion = (probs * weights.unsqueeze(1)).T @ probs
        confusion = confusion / confusion.sum(dim=0, keepdim=True).clamp_min(1e-12)  # a class no row predicts: 0
        return (confusion.sum() - confusion.trace()) / classes


# ---- the table: how the trainer uses each loss -----------------------------------------------------------------


def _dann(inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    args = inputs.args
    coefficient = dann_coefficient(inputs.progress, args.dann_schedule, args.dann_gamma, args.dann_max_coefficient)
    value, accuracy = domain_adversarial_loss(inputs.module, inputs.source, inputs.target, coefficient)
    logs = {"dann/lambda": torch.tensor(coefficient, device=value.device), "dann/discriminator_accuracy": accuracy}
    return value, logs


def _domain_discriminator(in_features: int, args) -> DomainDiscriminator:
    return DomainDiscriminator(
        in_features,
        hidden_size=args.discriminator_hidden_size,
        num_hidden_layers=args.discriminator_num_layers,
        dropout=args.discriminator_dropout,
    )


def _mmd(inputs: LossInputs) -> tuple[torch.Tensor, dict]:
    args = inputs.args
    return mmd_loss(inputs.source, inputs.target, tuple(args.mmd_kernel_multipliers), args.mmd_estimator), {}


def _coral(inputs: LossInputs) -> tuple[torch.Tensor, dict]:
    return coral_loss(inputs.source, inputs.target), {}


def _im(inputs: LossInputs) -> tuple[torch.Tensor, dict]:
    return information_maximization_loss(inputs.target_logits), {}


def _mcc(inputs: LossInputs) -> tuple[torch.Tensor, dict]:
    return minimum_class_confusion_loss(inputs.target_logits, inputs.args.mcc_temperature), {}


# `adaptation_loss` names -> how each is computed, gathered, trained, described and tuned. DANN is a mean over rows
# (each process's own rows, like the task loss); the others are statistics of the global batch.
ADAPTATION_LOSSES: dict[str, LossSpec] = {
    "dann": LossSpec(
        compute=_dann,
        reads="features",
        global_batch=False,
        method=Method(
            "DANN",
            "domain-adversarial training: a domain discriminator behind a gradient reversal layer",
            "Ganin et al., *Domain-Adversarial Training of Neural Networks*, JMLR 2016",
        ),
        config_fields=(
            "dann_schedule",
            "dann_gamma",
            "dann_max_coefficient",
            "discriminator_hidden_size",
            "discriminator_num_layers",
            "discriminator_dropout",
            "discriminator_learning_rate",
        ),
        module=_domain_discriminator,
        module_name="domain_discriminator",
        module_learning_rate="discriminator_learning_rate",
        remedy_fields=("dann_max_coefficient", "discriminator_learning_rate"),
    ),
    "mmd": LossSpec(
        compute=_mmd,
        reads="features",
        global_batch=True,
        method=Method(
            "MMD (DAN)",
            "multi-kernel maximum mean discrepancy between source and target features",
            "Long et al., *Learning Transferable Features with Deep Adaptation Networks*, ICML 2015",
        ),
        config_fields=("mmd_kernel_multipliers", "mmd_estimator"),
    ),
    "coral": LossSpec(
        compute=_coral,
        reads="features",
        global_batch=True,
        method=Method(
            "CORAL",
            "matching the covariances of source and target features",
            "Sun & Saenko, *Deep CORAL: Correlation Alignment for Deep Domain Adaptation*, ECCV Workshops 2016",
        ),
    ),
    "im": LossSpec(
        compute=_im,
        reads="target_logits",
        global_batch=True,
        method=Method(
            "IM",
            "information maximisation: confident and diverse predictions on the unlabeled target rows",
            "Shi & Sha, *Information-Theoretical Learning of Discriminative Clusters for Unsupervised Domain "
            "Adaptation*, ICML 2012; Liang et al., *Do We Really Need to Access the Source Data?* (SHOT), ICML 2020",
        ),
    ),
    "mcc": LossSpec(
        compute=_mcc,
        reads="target_logits",
        global_batch=True,
        method=Method(
            "MCC",
            "minimum class confusion: less confusion between classes in the predictions on the unlabeled target rows",
            "Jin et al., *Minimum Class Confusion for Versatile Domain Adaptation*, ECCV 2020",
        ),
        config_fields=("mcc_temperature",),
    ),
}
