"""Escalation after the local answer: per-field confidence, cascade and cascade routing, and their benchmark."""
