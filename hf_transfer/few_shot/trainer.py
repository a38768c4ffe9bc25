"""`FewShotTrainer`: contrastive few-shot training (SetFit) as a `transformers.Trainer`.

The contrastive stage is ordinary Trainer training over pairs of the labeled rows (so the transfer strategy, PEFT,
precision, checkpoints, exact resume and several processes all apply); the head stage runs when `train()` ends and
writes a logistic regression fitted on the trained embeddings into the model's linear head.
"""

from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.trainer_utils import seed_worker

from ..base_trainer import BaseTrainerMixin
from ..callbacks import SamplerEpochCallback
from ..domain_mixing import DomainMixingBatchSampler, unlabeled_rows_like
from ..features import capture_head_input, embed_and_predict
from ..hub.model_card import Method, TrainingDescription
from .config import FewShotConfig
from .head import check_every_class_labeled, fit_logistic_regression, linear_head, set_linear_head
from .losses import cosine_similarity_loss
from .pairs import PAIR_SIMILARITY_KEY, PairCollator, PairDataset, contrastive_pairs
from .zero_shot import ZERO_SHOT_RECORD

INTENDED_USE = (
    "Classification of inputs like the few labeled examples it was trained on, with their labels. Trained on very "
    "few\nexamples: its accuracy varies with which examples were drawn (see the results above for the evaluation "
    "sets)."
)


class FewShotMixin(BaseTrainerMixin):
    """SetFit-style few-shot training for any `transformers.Trainer` (sub)class: `class MyTrainer(FewShotMixin,
    Trainer): pass`.

    `train_dataset` holds the few labeled rows (model inputs and `label`/`labels`); the trainer makes the
    contrastive pairs of them (`FewShotConfig.sampling_strategy`). Extra keyword arguments: `unlabeled_dataset`
    (rows with the same model-input columns, for `pseudo_label_threshold`) and `peft_config`.

    The model's head must be one linear layer on the sentence embedding: a
    `SentenceClassifierForSequenceClassification` (mean pooling, for sentence-transformers encoders), or any
    classification model of that shape (`BertForSequenceClassification` reads the pooler's first-token output).
    """

    config_class = FewShotConfig
    _tag_names = ["hf_transfer", "few-shot"]
    # compute_loss returns the mean over the pairs of a micro-batch, and every micro-batch holds the same number of
    # pairs: the Trainer's division by the accumulation steps gives the loss of the accumulated batch exactly.
    loss_is_scaled_for_ga = False

    def __init__(self, model=None, args=None, *trainer_args, unlabeled_dataset=None, peft_config=None, **kwargs):
        args = self._upgrade_args(args)
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError(
                "`compute_loss_func` is not supported by FewShotTrainer: the contrastive loss is its own. Remove it."
            )
        if unlabeled_dataset is not None and args.pseudo_label_threshold is None:
            raise ValueError(
                "`unlabeled_dataset` is only used for self-training of the head: set `pseudo_label_threshold` (e.g. "
                "0.9), or drop `unlabeled_dataset`."
            )
        if args.pseudo_label_threshold is not None and unlabeled_dataset is None:
            raise ValueError("`pseudo_label_threshold` pseudo-labels the `unlabeled_dataset`: pass one, or drop it.")
        self.unlabeled_dataset = unlabeled_dataset
        super().__init__(model, args, *trainer_args, peft_config=peft_config, **kwargs)
        if self.args.head == "logistic_regression":
            linear_head(self._classifier)  # fails now if the head is not one linear layer
        self.head_report: dict | None = None
        self.add_callback(SamplerEpochCallback())

    # ---- the contrastive stage ------------------------------------------------------------------------------

    def _labeled_rows(self):
        if self.train_dataset is None:
            raise ValueError("FewShotTrainer: training requires `train_dataset`, the few labeled rows.")
        rows = self._prepare_training_dataset(self.train_dataset, "train_dataset")
        label_key = next((key for key in ("labels", "label") if key in rows.column_names), None)
        if label_key is None:
            raise ValueError(f"`train_dataset` has no `label` or `labels` column (columns: {rows.column_names}).")
        labels = np.asarray(rows[label_key])
        if (labels < 0).any():
            raise ValueError(
                f"`train_dataset` has {(labels < 0).sum()} row(s) without a label (-100): few-shot training needs "
                "every training row labeled; pass unlabeled rows as `unlabeled_dataset`."
            )
        return rows, labels

    def get_train_dataloader(self) -> DataLoader:
        """Batches of `per_device_train_batch_size` contrastive pairs of the labeled rows (2 × that many rows)."""
        rows, labels = self._labeled_rows()
        args = self.args
        pairs = contrastive_pairs(labels, args.sampling_strategy, args.num_iterations, seed=args.seed)
        if len(pairs) < args.per_device_train_batch_size:
            raise ValueError(
                f"{len(rows)} labeled rows give {len(pairs)} contrastive pairs, fewer than one batch of "
                f"{args.per_device_train_batch_size}: lower `per_device_train_batch_size` or set `num_iterations`."
            )
        sampler = DomainMixingBatchSampler(
            num_source=len(pairs),
            num_target=0,
            source_rows=args.per_device_train_batch_size,
            target_rows=0,
            seed=args.data_seed if args.data_seed is not None else args.seed,
        )
        dataloader = DataLoader(
            PairDataset(rows, pairs),
            batch_sampler=sampler,
            collate_fn=PairCollator(self.data_collator),
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            worker_init_fn=partial(seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index),
        )
        return self.accelerator.prepare(dataloader)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        similarity = inputs.pop(PAIR_SIMILARITY_KEY, None)
        if similarity is None:  # evaluation batches: the classification loss with the labels
            outputs = model(**inputs)
            return (outputs["loss"], outputs) if return_outputs else outputs["loss"]
        with capture_head_input(self._classifier) as captured:
            outputs = model(**inputs)
        embeddings = captured["features"]
        if embeddings.dim() != 2:
            raise ValueError(
                f"The head's input has shape {tuple(embeddings.shape)}, not one embedding per row: use a model whose "
                "head reads a sentence embedding (`SentenceClassifierForSequenceClassification.from_encoder`)."
            )
        half = similarity.shape[0]
        loss = cosine_similarity_loss(embeddings[:half], embeddings[half:], similarity)
        self._record("loss/contrastive", loss)
        return (loss, outputs) if return_outputs else loss

    # ---- the head stage --------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None):
        """The contrastive stage (`Trainer.train`), then the head (`FewShotConfig.head`)."""
        if self.args.head == "logistic_regression":  # fail before training, not after
            _, labels = self._labeled_rows()
            check_every_class_labeled(labels, linear_head(self._classifier).out_features, "`train_dataset`'s rows")
            if self.unlabeled_dataset is not None:
                self._unlabeled_rows()
        # The head plays no part in the contrastive loss: frozen while it trains, it is left out of the optimizer
        # (no weight decay on it) and out of DDP's gradient reduction, which would otherwise wait for its gradients.
        head = [p for p in self._classifier.parameters() if p.requires_grad]
        for parameter in head:
            parameter.requires_grad_(False)
        try:
            output = super().train(resume_from_checkpoint, trial, ignore_keys_for_eval)
        finally:
            for parameter in head:
                parameter.requires_grad_(True)
        if self.args.head == "logistic_regression":
            self.fit_head()
        return output

    def _unlabeled_rows(self):
        labeled, _ = self._labeled_rows()
        label_key = "labels" if "labels" in labeled.column_names else "label"
        unlabeled = self._prepare_training_dataset(self.unlabeled_dataset, "unlabeled_dataset")
        return unlabeled_rows_like(labeled, unlabeled, label_key, "unlabeled_dataset")

    def fit_head(self) -> dict:
        """Fit the logistic-regression head on the embeddings of the labeled rows (and, with
        `pseudo_label_threshold`, of the unlabeled rows predicted confidently) and write it into the model's head.
        Every process computes the same head from the same rows. Returns what it did (also shown in the card)."""
        model = self.accelerator.unwrap_model(self.model)
        rows, labels = self._labeled_rows()
        num_labels = linear_head(self._classifier).out_features
        features = self._embed(model, rows)
        weight, bias = fit_logistic_regression(
            features, labels, num_labels, self.args.head_regularization, self.args.head_max_iter
        )
        report = {"labeled_rows": len(labels)}
        if self.args.pseudo_label_threshold is not None:
            unlabeled = self._embed(model, self._unlabeled_rows())
            probabilities = _softmax(unlabeled @ weight.T + bias)
            keep = probabilities.max(axis=1) >= self.args.pseudo_label_threshold
            pseudo = probabilities.argmax(axis=1)[keep]
            report.update(unlabeled_rows=len(unlabeled), pseudo_labeled_rows=int(keep.sum()))
            if keep.any() and len(set(pseudo.tolist())) == num_labels:
                features, labels = np.concatenate([features, unlabeled[keep]]), np.concatenate([labels, pseudo])
                weight, bias = fit_logistic_regression(
                    features, labels, num_labels, self.args.head_regularization, self.args.head_max_iter
                )
            else:
                report["pseudo_labels_used"] = False  # some class got no confident row: the labeled head stays
        set_linear_head(self._classifier, weight, bias)
        self.head_report = report
        return report

    def _embed(self, model, rows) -> np.ndarray:
        autocast = torch.autocast(self.args.device.type, dtype=torch.bfloat16, enabled=self.args.bf16)
        with autocast:
            return embed_and_predict(
                model, rows, self.data_collator, self.args.per_device_eval_batch_size, self._classifier_name
            )["features"]

    # ---- the card ---------------------------------------------------------------------------------------------

    def describe_training(self) -> TrainingDescription:
        """What was done: the zero-shot head (if the model has one), the contrastive stage (if it ran), the fitted
        head (if it was fitted: after training, or alone with `fit_head()`)."""
        args = self.args
        zero_shot = getattr(self.accelerator.unwrap_model(self.model).config, ZERO_SHOT_RECORD, None)
        methods, hyperparameters, done = [], [], []
        if zero_shot is not None:
            methods.append(_ZERO_SHOT)
            hyperparameters += [("label descriptions", zero_shot["labels"]), ("templates", zero_shot["templates"]),
                                ("logit_scale", zero_shot["logit_scale"])]  # fmt: skip
            done.append("a zero-shot head from label embeddings")
        if self.state.global_step > 0:
            pairs = f"num_iterations={args.num_iterations}" if args.num_iterations else args.sampling_strategy
            methods.append(_CONTRASTIVE)
            hyperparameters.append(("contrastive pairs", pairs))
            done.append("contrastive few-shot training (SetFit)")
        if self.head_report is not None:
            methods.append(_LOGISTIC_HEAD)
            hyperparameters.append(("head_regularization (C)", args.head_regularization))
            hyperparameters += [(f"head fitted on: {key}", value) for key, value in self.head_report.items()]
            done.append("a logistic-regression head on the embeddings")
            if args.pseudo_label_threshold is not None:
                methods.append(_SELF_TRAINING)
                hyperparameters.append(("pseudo_label_threshold", args.pseudo_label_threshold))
        return TrainingDescription(
            summary=f"by {' then '.join(done) or 'nothing yet (no training step, no head fitted)'}.",
            methods=methods,
            hyperparameters=hyperparameters,
            tags=["few-shot"]
            + (["setfit"] if self.state.global_step > 0 else [])
            + (["zero-shot"] if zero_shot else []),
            data_label="Training data (the few labeled examples)",
            intended_use=INTENDED_USE,
        )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


_CONTRASTIVE = Method(
    "Contrastive fine-tuning of the encoder",
    "pairs of labeled examples; mean squared error between the cosine similarity of their embeddings and 1 (same "
    "class) or 0",
    "Tunstall et al., 2022, arXiv:2209.11055 (SetFit)",
)
_ZERO_SHOT = Method(
    "Zero-shot head from label embeddings",
    "each head row is logit_scale × the normalised mean embedding of the label's descriptions in every template",
    "prompt ensembling as in Radford et al., 2021 (CLIP)",
)
_LOGISTIC_HEAD = Method(
    "Logistic-regression head",
    "fitted on the trained embeddings of the labeled examples, written into the model's head",
)
_SELF_TRAINING = Method(
    "Self-training of the head",
    "unlabeled examples the head predicts confidently are added with their predicted labels and the head is refitted",
)


class FewShotTrainer(FewShotMixin, Trainer):
    """A `transformers.Trainer` for contrastive few-shot classification (SetFit). Example:

    ```python
    from hf_transfer import FewShotConfig, FewShotTrainer, SentenceClassifierForSequenceClassification

    model = SentenceClassifierForSequenceClassification.from_encoder(
        "sentence-transformers/all-MiniLM-L6-v2", num_labels=2, id2label={0: "negative", 1: "positive"}
    )
    args = FewShotConfig(output_dir="out")  # SetFit's defaults: 1 epoch of balanced pairs, lr 2e-5, batch 16
    trainer = FewShotTrainer(model=model, args=args, train_dataset=eight_per_class, eval_dataset=test,
                             processing_class=tokenizer, compute_metrics=compute_classification_metrics)
    trainer.train()  # contrastive stage, then the logistic-regression head
    trainer.save_model()
    ```
    """
