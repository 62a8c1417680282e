"""The local sentence-embedding model for the semantic drift detector (extra `semantic`)."""

from .minilm import MiniLMEmbedder, minilm_embedder, semantic_available

__all__ = ["MiniLMEmbedder", "minilm_embedder", "semantic_available"]
