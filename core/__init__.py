"""What the router and the compiler share: the error root, the row reader, cache paths (no heavy imports)."""
