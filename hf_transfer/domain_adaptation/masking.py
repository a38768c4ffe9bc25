"""Masked copies of the target rows of a training batch, for the target masked-LM loss (`adaptation_loss` "mlm").

The copies are appended to the batch (domain label 2), so one forward pass of the model serves the classification,
the alignment losses and the masked-LM loss (one forward also keeps data parallelism simple). The masking is
`DataCollatorForLanguageModeling`'s (BERT's rules: `mlm_probability` of the tokens, of which 80 % become [MASK],
10 % a random token, 10 % stay), drawn from a generator seeded by (seed, step, process, batch), so a resumed run
masks exactly as the uninterrupted run did.
"""

import torch
from transformers import DataCollatorForLanguageModeling

MASKED_TARGET_DOMAIN = 2


class TargetMasking:
    """Appends masked copies of the target rows (domain 1) to a batch; returns the batch and the masked-LM labels."""

    def __init__(self, tokenizer, mlm_probability: float, seed: int):
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wrapping a tokenizer
        if tokenizer is None or getattr(tokenizer, "mask_token", None) is None:
            raise ValueError(
                "`adaptation_loss` 'mlm' masks target tokens, which needs the model's tokenizer with a mask token: "
                f"pass `processing_class=<tokenizer>` (got {type(tokenizer).__name__})."
            )
        self.collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.seed = seed

    def __call__(self, inputs: dict, domain_labels: torch.Tensor, labels, step: int, process: int):
        if "input_ids" not in inputs:
            raise ValueError("`adaptation_loss` 'mlm' needs `input_ids` in the batch: it is for text models.")
        rows = domain_labels.shape[0]
        target = domain_labels == 1
        ids = inputs["input_ids"][target].detach().cpu()
        special = torch.isin(ids, self.special_ids)
        if "attention_mask" in inputs:
            special |= inputs["attention_mask"][target].detach().cpu() == 0
        batch_key = int(ids.sum()) % 1_000_003  # tells the micro-batches of one step apart under accumulation
        seed = (self.seed * 1_000_003 + step) * 1_009 + process * 10_007 + batch_key
        self.collator.generator = torch.Generator().manual_seed(seed)
        masked_ids, mlm_labels = self.collator.torch_mask_tokens(ids.clone(), special_tokens_mask=special)
        device = inputs["input_ids"].device
        extended = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows:
                copies = masked_ids.to(device) if key == "input_ids" else value[target]
                value = torch.cat([value, copies], dim=0)
            extended[key] = value
        copies = target.sum()
        domain_labels = torch.cat([domain_labels, domain_labels.new_full((copies,), MASKED_TARGET_DOMAIN)])
        if labels is not None:
            labels = torch.cat([labels, labels.new_full((copies,), -100)])
        all_labels = torch.cat([torch.full_like(inputs["input_ids"], -100), mlm_labels.to(device)], dim=0)
        return extended, domain_labels, labels, all_labels
