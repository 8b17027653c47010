"""Customisation: LoRA fine-tuning of the local model on labelled examples or the frontier's answers."""
