"""Generation backends; each one's heavy imports live inside it."""
