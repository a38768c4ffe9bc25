import pytest
from transformers import HfArgumentParser

from hf_transfer import DomainAdaptationConfig


def make(**kwargs):
    return DomainAdaptationConfig(output_dir="unused", report_to="none", **kwargs)


def test_defaults_are_dann_with_half_half_batches():
    config = make(per_device_train_batch_size=32)
    assert config.adaptation_loss == ["dann"]
    assert config.adaptation_loss_weights == [1.0]
    assert (config.source_rows_per_batch, config.target_rows_per_batch) == (16, 16)


@pytest.mark.parametrize("value", [[], ["none"], "none", [""], None])
def test_empty_loss_list_is_the_source_only_baseline(value):
    config = make(adaptation_loss=value, per_device_train_batch_size=8)
    assert config.adaptation_loss == []
    assert config.target_rows_per_batch == 0
    assert config.source_rows_per_batch == 4


def test_comma_separated_and_weighted_losses():
    config = make(adaptation_loss="dann,MMD", adaptation_loss_weights=[1.0, 0.5])
    assert config.adaptation_loss == ["dann", "mmd"]
    assert config.adaptation_loss_weights == [1.0, 0.5]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"adaptation_loss": ["dann", "cdann"]}, "adaptation_loss` has unknown loss name"),
        ({"adaptation_loss": ["mmd", "mmd"]}, "lists a loss twice"),
        ({"adaptation_loss": ["dann", "mmd"], "adaptation_loss_weights": [1.0]}, "give one weight per loss"),
        ({"adaptation_loss_weights": [-1.0]}, "must be finite and >= 0"),
        ({"target_batch_fraction": 1.0}, "target_batch_fraction` must be strictly between 0 and 1"),
        ({"per_device_train_batch_size": 7}, "an even one for half/half mixing"),
        ({"per_device_train_batch_size": 2}, "at least 2 rows of each"),
        ({"dann_schedule": "linear"}, "dann_schedule` must be 'ganin' or 'constant'"),
        ({"dann_gamma": 0.0}, "dann_gamma` must be > 0"),
        ({"discriminator_dropout": 1.0}, "discriminator_dropout` must be in [0, 1)"),
        ({"mmd_kernel_multipliers": []}, "mmd_kernel_multipliers` must be a non-empty list"),
        ({"mmd_estimator": "linear"}, "mmd_estimator` must be 'unbiased' or 'biased'"),
        ({"alignment_features": "pooler"}, "alignment_features` must be one of"),
        ({"discriminator_learning_rate": 0.0}, "discriminator_learning_rate` must be > 0"),
        ({"mcc_temperature": 0.0}, "mcc_temperature` must be > 0 (2.5 is the paper's default)"),
        ({"cdan_randomized": "yes"}, "cdan_randomized` must be 'auto', 'always' or 'never'"),
        ({"cdan_randomized_dim": 0}, "cdan_randomized_dim` must be >= 1 (the paper uses 1024)"),
        ({"wdgrl_critic_steps": 0}, "wdgrl_critic_steps` must be >= 1 (the paper uses 5)"),
        ({"wdgrl_critic_learning_rate": 0.0}, "wdgrl_critic_learning_rate` must be > 0 (paper: 1e-4)"),
        ({"wdgrl_gradient_penalty": -1.0}, "wdgrl_gradient_penalty` must be >= 0 (the paper uses 10)"),
        ({"wdgrl_critic_hidden_size": 0}, "wdgrl_critic_hidden_size` must be >= 1"),
        ({"self_training_teacher": "student"}, "self_training_teacher` must be 'initial' or 'ema'"),
        ({"ema_decay": 1.0}, "ema_decay` must be in [0, 1)"),
        ({"self_training_threshold": 1.5}, "self_training_threshold` must be a probability in [0, 1]"),
        ({"self_training_top_fraction": 0.0}, "self_training_top_fraction` must be in (0, 1] or None"),
        ({"self_training_ramp_ratio": 2.0}, "self_training_ramp_ratio` must be in [0, 1]"),
        ({"mlm_probability": 0.0}, "mlm_probability` must be in (0, 1) (BERT uses 0.15)"),
    ],
)
def test_validation_errors_name_the_argument_and_the_fix(kwargs, message):
    with pytest.raises(ValueError) as error:
        make(**kwargs)
    assert message in str(error.value)


def test_odd_batch_is_fine_for_source_only():
    assert make(adaptation_loss=[], per_device_train_batch_size=7).adaptation_loss == []


def test_command_line_parsing():
    parser = HfArgumentParser(DomainAdaptationConfig)
    (config,) = parser.parse_args_into_dataclasses(
        args=[
            "--output_dir",
            "x",
            "--adaptation_loss",
            "dann",
            "mcc",
            "--adaptation_loss_weights",
            "1",
            "0.3",
            "--per_device_train_batch_size",
            "16",
            "--dann_schedule",
            "constant",
        ]
    )
    assert config.adaptation_loss == ["dann", "mcc"]
    assert config.adaptation_loss_weights == [1.0, 0.3]
    assert config.dann_schedule == "constant"
    (config,) = parser.parse_args_into_dataclasses(args=["--output_dir", "x", "--adaptation_loss", "none"])
    assert config.adaptation_loss == []
    help_text = parser.format_help()
    for name in (
        "--adaptation_loss",
        "--target_batch_fraction",
        "--dann_gamma",
        "--mmd_estimator",
        "--mcc_temperature",
        "--alignment_features",
    ):
        assert name in help_text


def test_the_adapter_settings_have_neutral_names_and_the_lora_names_still_work():
    from hf_transfer import FineTuningConfig
    from hf_transfer.strategies import build_peft_config

    def config(**kwargs):
        return FineTuningConfig(output_dir="unused", report_to="none", transfer_strategy="loha", **kwargs)

    new, old = (
        config(adapter_rank=4, adapter_alpha=8, adapter_dropout=0.2),
        config(lora_r=4, lora_alpha=8, lora_dropout=0.2),
    )
    assert (old.adapter_rank, old.adapter_alpha, old.adapter_dropout) == (4, 8, 0.2) and old.lora_r is None
    from conftest import tiny_bert

    for args in (new, old):  # LoHa's r, alpha and rank_dropout, under either name
        peft_config = build_peft_config(args, tiny_bert(), "classifier")
        assert (peft_config.r, peft_config.alpha, peft_config.rank_dropout) == (4, 8, 0.2)
    assert config(lora_r=4, adapter_rank=4).adapter_rank == 4  # the same value twice is fine
    with pytest.raises(
        ValueError, match=r"`lora_r`=4 and `adapter_rank`=8 set the same thing .* give only `adapter_rank`"
    ):
        config(lora_r=4, adapter_rank=8)
    with pytest.raises(ValueError, match=r"`adapter_dropout` must be in \[0, 1\), got 1.0"):
        config(adapter_dropout=1.0)
    (parsed,) = HfArgumentParser(FineTuningConfig).parse_args_into_dataclasses(
        args=["--output_dir", "x", "--transfer_strategy", "lora", "--lora_r", "2", "--adapter_alpha", "3"]
    )
    assert (parsed.adapter_rank, parsed.adapter_alpha) == (2, 3)
