"""Few labels in the target domain: zero-shot classification by label embeddings and contrastive few-shot training
(SetFit), on a sentence-embedding classifier that is a regular `transformers` model.

- `SentenceClassifierForSequenceClassification` (+ `SentenceClassifierConfig`): an encoder, mean pooling,
  normalisation and a linear head; registered with the Auto classes here, loadable anywhere with
  `trust_remote_code=True`;
- `zero_shot_classifier`: its head set from embeddings of the label descriptions;
- `FewShotConfig` + `FewShotTrainer` (`FewShotMixin`): contrastive pairs of the K labeled rows per class, then a
  logistic-regression head (optionally self-trained on unlabeled rows);
- `contrastive_pairs`, `cosine_similarity_loss`, `fit_logistic_regression`: the pieces, usable alone.
"""

from transformers import AutoConfig, AutoModelForSequenceClassification

from .config import FewShotConfig
from .head import fit_logistic_regression
from .losses import cosine_similarity_loss
from .modeling_sentence_classifier import SentenceClassifierConfig, SentenceClassifierForSequenceClassification
from .pairs import contrastive_pairs
from .trainer import FewShotMixin, FewShotTrainer
from .zero_shot import DEFAULT_TEMPLATES, label_embeddings, zero_shot_classifier

AutoConfig.register(SentenceClassifierConfig.model_type, SentenceClassifierConfig, exist_ok=True)
AutoModelForSequenceClassification.register(
    SentenceClassifierConfig, SentenceClassifierForSequenceClassification, exist_ok=True
)

__all__ = [
    "DEFAULT_TEMPLATES",
    "FewShotConfig",
    "FewShotMixin",
    "FewShotTrainer",
    "SentenceClassifierConfig",
    "SentenceClassifierForSequenceClassification",
    "contrastive_pairs",
    "cosine_similarity_loss",
    "fit_logistic_regression",
    "label_embeddings",
    "zero_shot_classifier",
]
