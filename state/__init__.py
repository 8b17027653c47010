"""State shared by replicas of `openfirst serve`: per-key rate limits and frontier budgets in Redis, decisions and
durable spend in a SQL database, each failing closed when its store cannot be reached (`SharedState`)."""
