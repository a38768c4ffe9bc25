from .amazon_reviews import AMAZON_DOMAINS, load_amazon_reviews
from .digits import load_digits
from .domain_datasets import load_domain_dataset

__all__ = ["AMAZON_DOMAINS", "load_amazon_reviews", "load_digits", "load_domain_dataset"]
