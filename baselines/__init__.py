"""Encoders that implement the harness protocol: MetaEmbed, single-vector and ColBERT-style models."""
