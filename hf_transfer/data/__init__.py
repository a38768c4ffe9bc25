from .amazon_reviews import AMAZON_DOMAINS, load_amazon_reviews
from .domain_datasets import load_domain_dataset

__all__ = ["AMAZON_DOMAINS", "load_amazon_reviews", "load_domain_dataset"]
