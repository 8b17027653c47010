"""openfirst compiler: Pydantic tasks -> grammar-constrained generation programs."""
