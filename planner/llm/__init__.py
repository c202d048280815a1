"""The planner's LLM backends: the packaged model in-process (``local``), any
OpenAI-compatible endpoint (``openai``), and a server of the packaged model (``serve``)."""
