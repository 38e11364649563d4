"""Causal LMs built from config (`reprolab.models.config.CausalLM`)."""
