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
from .modules import (
    ConditionalDomainDiscriminator,
    DomainDiscriminator,
    WassersteinCritic,
    frozen_copy,
    masked_lm_head,
    update_ema,
)


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
    does not reward putting every row in one class: a collapse onto one class scores about 1/C, at any logit margin
    (computed in log space, so a class given almost no probability still has its normalised column).
    `target_logits` is `(m, C)`, m ≥ 1, C ≥ 2.
    """
    with torch.autocast(device_type=target_logits.device.type, enabled=False):
        rows, classes = target_logits.shape
        log_probs = torch.log_softmax(target_logits.float() / temperature, dim=1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs).sum(dim=1).detach()
        log_weights = torch.log(1.0 + torch.exp(-entropy))
        log_weights = math.log(rows) + log_weights - torch.logsumexp(log_weights, dim=0)
        # the confusion matrix and its per-class normalisation in log space: a class that the rows give almost no
        # probability (a collapse) keeps its exact normalised column, all confusion, instead of 0 / 0
        terms = log_weights.view(-1, 1, 1) + log_probs.unsqueeze(2) + log_probs.unsqueeze(1)
        normalised = torch.softmax(torch.logsumexp(terms, dim=0), dim=0)
        return (classes - normalised.trace()) / classes


def conditional_adversarial_loss(
    discriminator: ConditionalDomainDiscriminator,
    source: torch.Tensor,
    target: torch.Tensor,
    source_logits: torch.Tensor,
    target_logits: torch.Tensor,
    coefficient: float,
    entropy_conditioning: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CDAN loss (Long et al., *Conditional Adversarial Domain Adaptation*, NeurIPS 2018).

    The discriminator D sees h = T(f, g), the multilinear map of the features f and the predicted class
    probabilities g = softmax(logits), detached (the predictions condition the alignment; only f is pushed):
    L = Σ_i w_i · BCE(D(GRL_λ(h_i)), d_i) / Σ_i w_i over the n + m rows, domain label d = 0 for source, 1 for
    target. CDAN: w_i = 1. CDAN+E (`entropy_conditioning`): w_i = 1 + exp(−H(g_i)), normalised over the batch
    (Σ w = n + m, as in Transfer-Learning-Library), so confidently predicted rows weigh more.

    Shapes: features `(n, F)` / `(m, F)`, logits `(n, C)` / `(m, C)`. Returns the loss and the discriminator's
    accuracy on the batch (no gradient).
    """
    features = torch.cat([source, target], dim=0).float()
    probabilities = torch.softmax(torch.cat([source_logits, target_logits], dim=0).float(), dim=1).detach()
    domain_labels = torch.cat([features.new_zeros(source.shape[0]), features.new_ones(target.shape[0])])
    with torch.autocast(device_type=features.device.type, enabled=False):
        conditioned = discriminator.map(features, probabilities)
        logits = discriminator.discriminator(gradient_reversal(conditioned, coefficient)).float()
        losses = F.binary_cross_entropy_with_logits(logits, domain_labels, reduction="none")
        if entropy_conditioning:
            entropy = -(probabilities * torch.log(probabilities.clamp_min(1e-12))).sum(dim=1)
            weights = 1.0 + torch.exp(-entropy)
            loss = (weights * losses).sum() / weights.sum()
        else:
            loss = losses.mean()
    accuracy = ((logits.detach() > 0).float() == domain_labels).float().mean()
    return loss, accuracy


def wasserstein_estimate(critic: nn.Module, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """WDGRL's empirical Wasserstein-1 estimate (Shen et al., AAAI 2018, eq. 5): W = mean c(h_s) − mean c(h_t)."""
    return critic(source).mean() - critic(target).mean()


def gradient_penalty(critic: nn.Module, source: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor):
    """The WGAN-GP penalty (Gulrajani et al., NeurIPS 2017) as WDGRL uses it: mean over rows of
    (‖∇_x̂ c(x̂)‖₂ − 1)² at x̂ = t + α (s − t), α ~ U(0, 1) per row; the first min(n, m) rows of each domain pair up.

    `alpha` is `(k, 1)`, k = min(n, m). Differentiable in the critic's parameters (for its own update)."""
    rows = alpha.shape[0]
    interpolates = (target[:rows] + alpha * (source[:rows] - target[:rows])).detach().requires_grad_(True)
    (gradients,) = torch.autograd.grad(critic(interpolates).sum(), interpolates, create_graph=True)
    return (gradients.norm(2, dim=1) - 1.0).pow(2).mean()


def train_wasserstein_critic(
    critic: nn.Module,
    optimizer: torch.optim.Optimizer,
    source: torch.Tensor,
    target: torch.Tensor,
    steps: int,
    penalty_weight: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """WDGRL's inner loop: `steps` ascent steps of the critic on W − γ · gradient penalty, on detached features (the
    feature extractor is not touched). Returns the last step's W estimate and penalty (detached)."""
    source, target = source.detach().float(), target.detach().float()
    rows = min(source.shape[0], target.shape[0])
    estimate = penalty = source.new_zeros(())
    with torch.enable_grad(), torch.autocast(device_type=source.device.type, enabled=False):
        for _ in range(steps):
            alpha = torch.rand(rows, 1, generator=generator).to(source.device)
            estimate = wasserstein_estimate(critic, source, target)
            penalty = gradient_penalty(critic, source, target, alpha)
            optimizer.zero_grad(set_to_none=True)
            (-estimate + penalty_weight * penalty).backward()
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return estimate.detach(), penalty.detach()


def select_pseudo_labels(
    teacher_probabilities: torch.Tensor, threshold: float = 0.0, top_fraction: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which target rows get a pseudo-label, and which: the teacher's most probable class.

    A row is eligible when the teacher's top probability is ≥ `threshold`. With `top_fraction`, the eligible rows
    are then chosen class by class (CFd, Ye et al., EMNLP 2020): within each predicted class the rows are ranked by
    the entropy of the teacher's prediction (lowest first), and rows are taken round-robin over the classes (the
    best of each class, then the second best of each, …) until ⌈top_fraction · m⌉ rows are chosen, so no class
    crowds out the others. Vectorised: a row's place in the round-robin is (its rank in its class, its class).

    `teacher_probabilities` is `(m, C)`. Returns `(selected (m,) bool, pseudo_labels (m,) long)`.
    """
    confidence, pseudo_labels = teacher_probabilities.max(dim=1)
    selected = confidence >= threshold
    if top_fraction is None:
        return selected, pseudo_labels
    rows, classes = teacher_probabilities.shape
    entropy = -(teacher_probabilities * torch.log(teacher_probabilities.clamp_min(1e-12))).sum(dim=1)
    by_entropy = torch.argsort(entropy, stable=True)
    by_class = by_entropy[torch.argsort(pseudo_labels[by_entropy], stable=True)]  # classes, each by entropy
    eligible_sorted = selected[by_class].long()
    labels_sorted = pseudo_labels[by_class]
    # rank among the eligible rows of the same class: cumulative count of eligible rows within the class
    eligible_before = torch.cumsum(eligible_sorted, 0) - eligible_sorted
    first_of_class = torch.searchsorted(labels_sorted, labels_sorted)
    rank_sorted = eligible_before - eligible_before[first_of_class]
    rank_sorted = torch.where(eligible_sorted.bool(), rank_sorted, torch.full_like(rank_sorted, rows))
    rank_in_class = torch.empty_like(rank_sorted)
    rank_in_class[by_class] = rank_sorted
    order = torch.argsort(rank_in_class * classes + pseudo_labels, stable=True)  # round-robin over the classes
    keep = torch.zeros_like(selected)
    keep[order[: math.ceil(top_fraction * rows)]] = True
    return keep & selected, pseudo_labels


def self_training_loss(
    target_logits: torch.Tensor, selected: torch.Tensor, pseudo_labels: torch.Tensor
) -> torch.Tensor:
    """Self-training (pseudo-labelling, Lee 2013): the cross-entropy of the student's target logits `(m, C)` with the
    teacher's pseudo-labels, averaged over the selected rows (0, with a gradient of 0, when none is selected)."""
    with torch.autocast(device_type=target_logits.device.type, enabled=False):
        losses = F.cross_entropy(target_logits.float(), pseudo_labels, reduction="none")
        return (losses * selected).sum() / selected.sum().clamp_min(1)


def masked_lm_loss(head: nn.Module, hidden_states: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Target masked-language-model loss (UDALM, Karouzos et al., NAACL 2021; Devlin et al. 2019): the
    cross-entropy of the head's predictions at the masked positions of the masked copies of the target rows.

    `hidden_states` `(k, T, d)` are the encoder's last hidden states of the masked rows, `labels` `(k, T)` the
    original token ids at masked positions and -100 elsewhere. 0 (with a gradient of 0) when nothing is masked."""
    logits = head(hidden_states)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        losses = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
        return losses / (labels != -100).sum().clamp_min(1)


# ---- the table: how the trainer uses each loss -----------------------------------------------------------------


def _dann(inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    args = inputs.args
    coefficient = dann_coefficient(inputs.progress, args.dann_schedule, args.dann_gamma, args.dann_max_coefficient)
    value, accuracy = domain_adversarial_loss(inputs.module, inputs.source, inputs.target, coefficient)
    logs = {"dann/lambda": torch.tensor(coefficient, device=value.device), "dann/discriminator_accuracy": accuracy}
    return value, logs


def _domain_discriminator(model, in_features: int, args) -> DomainDiscriminator:
    return DomainDiscriminator(
        in_features,
        hidden_size=args.discriminator_hidden_size,
        num_hidden_layers=args.discriminator_num_layers,
        dropout=args.discriminator_dropout,
    )


def _cdan(inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    args = inputs.args
    coefficient = dann_coefficient(inputs.progress, args.dann_schedule, args.dann_gamma, args.dann_max_coefficient)
    value, accuracy = conditional_adversarial_loss(
        inputs.module, inputs.source, inputs.target, inputs.source_logits, inputs.target_logits, coefficient,
        entropy_conditioning=args.cdan_entropy_conditioning,
    )  # fmt: skip
    logs = {"cdan/lambda": torch.tensor(coefficient, device=value.device), "cdan/discriminator_accuracy": accuracy}
    return value, logs


def _cdan_discriminator(model, in_features: int, args) -> ConditionalDomainDiscriminator:
    num_classes = model.config.num_labels
    full = in_features * num_classes
    randomized = args.cdan_randomized == "always" or (args.cdan_randomized == "auto" and full > 4096)
    return ConditionalDomainDiscriminator(
        in_features,
        num_classes,
        args.cdan_randomized_dim if randomized else None,
        hidden_size=args.discriminator_hidden_size,
        num_hidden_layers=args.discriminator_num_layers,
        dropout=args.discriminator_dropout,
    )


def _wdgrl(inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The critic's ascent steps on the global batch (every process the same, so the critic stays identical), then
    the feature extractor's term W on this process's rows, through the critic's current weights (no gradient to
    the critic: it is trained by its own steps only)."""
    args, critic = inputs.args, inputs.module
    generator = torch.Generator().manual_seed(args.seed * 1_000_003 + inputs.step)  # the same α on resume
    estimate, penalty = train_wasserstein_critic(
        critic, inputs.module_optimizer, inputs.gather(inputs.source.detach()), inputs.gather(inputs.target.detach()),
        args.wdgrl_critic_steps, args.wdgrl_gradient_penalty, generator,
    )  # fmt: skip
    frozen = {name: param.detach() for name, param in critic.named_parameters()}
    with torch.autocast(device_type=inputs.source.device.type, enabled=False):
        value = wasserstein_estimate(
            lambda rows: torch.func.functional_call(critic, frozen, (rows,)),
            inputs.source.float(), inputs.target.float(),
        )  # fmt: skip
    return value, {"wdgrl/critic_estimate": estimate, "wdgrl/gradient_penalty": penalty}


def _wasserstein_critic(model, in_features: int, args) -> WassersteinCritic:
    return WassersteinCritic(in_features, hidden_size=args.wdgrl_critic_hidden_size)


def _self_training(inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    args = inputs.args
    probabilities = torch.softmax(inputs.teacher_logits.detach().float(), dim=1)
    selected, pseudo_labels = select_pseudo_labels(
        probabilities, args.self_training_threshold, args.self_training_top_fraction
    )
    ramp = min(1.0, inputs.progress / args.self_training_ramp_ratio) if args.self_training_ramp_ratio else 1.0
    value = ramp * self_training_loss(inputs.target_logits, selected, pseudo_labels)
    counts = torch.bincount(pseudo_labels[selected], minlength=probabilities.shape[1]).float()
    logs = {
        "self_training/pseudo_label_rate": selected.float().mean(),
        "self_training/majority_class_share": counts.max() / counts.sum().clamp_min(1),
        "self_training/weight_ramp": torch.tensor(ramp, device=value.device),
    }
    return value, logs


def _teacher(model, in_features: int, args) -> nn.Module:
    return frozen_copy(model)


def _update_teacher(teacher: nn.Module, model: nn.Module, args) -> None:
    if args.self_training_teacher == "ema":
        update_ema(teacher, model, args.ema_decay)


def _restart_teacher(teacher: nn.Module, model: nn.Module, args) -> None:
    """Stage 2 starts: the teacher (initial or EMA) becomes a copy of the stage-1 model."""
    update_ema(teacher, model, 0.0)


def _mlm(inputs: LossInputs) -> tuple[torch.Tensor, dict]:
    return masked_lm_loss(inputs.module, inputs.masked_hidden_states, inputs.masked_labels), {}


def _masked_lm_head(model, in_features: int, args) -> nn.Module:
    return masked_lm_head(model)


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
    "cdan": LossSpec(
        compute=_cdan,
        reads="features_and_logits",
        global_batch=True,  # CDAN+E's weights are normalised over the whole batch
        method=Method(
            "CDAN",
            "conditional adversarial training: a domain discriminator on the features conditioned on the predictions "
            "(multilinear map), behind a gradient reversal layer; CDAN+E weighs confident rows more",
            "Long et al., *Conditional Adversarial Domain Adaptation*, NeurIPS 2018",
        ),
        config_fields=(
            "cdan_entropy_conditioning",
            "cdan_randomized",
            "cdan_randomized_dim",
        ),
        uses_fields_of=("dann",),  # DANN's λ schedule and discriminator settings
        module=_cdan_discriminator,
        module_name="cdan_discriminator",
        module_learning_rate="discriminator_learning_rate",
        remedy_fields=("dann_max_coefficient", "discriminator_learning_rate"),
    ),
    "wdgrl": LossSpec(
        compute=_wdgrl,
        reads="features",
        global_batch=False,  # W is a difference of means over rows; the critic's own steps see the global batch
        method=Method(
            "WDGRL",
            "Wasserstein distance guided representation learning: a critic estimates the Wasserstein-1 distance "
            "between source and target features (gradient penalty) and the features minimise it",
            "Shen et al., *Wasserstein Distance Guided Representation Learning for Domain Adaptation*, AAAI 2018",
        ),
        config_fields=(
            "wdgrl_critic_steps",
            "wdgrl_critic_learning_rate",
            "wdgrl_gradient_penalty",
            "wdgrl_critic_hidden_size",
        ),
        module=_wasserstein_critic,
        module_name="wasserstein_critic",
        module_learning_rate="wdgrl_critic_learning_rate",
        module_trained_by="loss",
        remedy_fields=("wdgrl_critic_learning_rate",),
    ),
    "self_training": LossSpec(
        compute=_self_training,
        reads="teacher_logits",
        global_batch=True,  # the class-balanced selection ranks the rows of the whole batch
        method=Method(
            "Self-training",
            "pseudo-labels on the unlabeled target rows from a teacher that never sees target labels (the initial "
            "model or an EMA of the model), selected by confidence and class balance",
            "Lee, *Pseudo-Label*, ICML-W 2013; Ye et al., *Feature Adaptation of Pre-Trained Language Models across "
            "Languages and Domains with Robust Self-Training* (CFd), EMNLP 2020",
        ),
        config_fields=(
            "self_training_teacher",
            "ema_decay",
            "self_training_threshold",
            "self_training_top_fraction",
            "self_training_ramp_ratio",
        ),
        module=_teacher,
        module_name="self_training_teacher",
        module_trained_by="none",
        after_step=_update_teacher,
        at_adaptation_start=_restart_teacher,
    ),
    "mlm": LossSpec(
        compute=_mlm,
        reads="masked_lm",
        global_batch=False,  # a mean over the masked tokens of each process, like the task loss over its rows
        method=Method(
            "Target MLM",
            "masked-language modelling on the unlabeled target text with the encoder the classifier uses",
            "Karouzos et al., *UDALM: Unsupervised Domain Adaptation through Language Modeling*, NAACL 2021",
        ),
        config_fields=("mlm_probability",),
        module=_masked_lm_head,
        module_name="mlm_head",
    ),
}
