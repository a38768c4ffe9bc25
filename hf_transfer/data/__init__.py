from .amazon_reviews import AMAZON_DOMAINS, load_amazon_reviews

__all__ = ["AMAZON_DOMAINS", "load_amazon_reviews"]
