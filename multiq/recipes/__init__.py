"""Recipes: sequences of phases and their metrics — transfer, continual, meta, adapt-k."""
