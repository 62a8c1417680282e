"""An LLM alignment judge over any OpenAI-compatible endpoint (the `openai` SDK, base_url)."""

from .openai_judge import OpenAIJudge, judge_from_settings

__all__ = ["OpenAIJudge", "judge_from_settings"]
