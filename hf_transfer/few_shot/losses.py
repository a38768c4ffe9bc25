"""The contrastive loss of the few-shot family."""

import torch
from torch import nn


def cosine_similarity_loss(first: torch.Tensor, second: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
    """SetFit's default body loss (sentence-transformers' `CosineSimilarityLoss`):

        mean_k (cos(u_k, v_k) − y_k)²

    `first`, `second`: (B, D) embeddings of the two rows of each pair; `similarity`: (B,) targets y, 1.0 for a
    pair of the same class and 0.0 otherwise. Computed in float32 (safe under autocast)."""
    cosine = nn.functional.cosine_similarity(first.float(), second.float(), dim=-1)
    return nn.functional.mse_loss(cosine, similarity.float().to(cosine.device))
