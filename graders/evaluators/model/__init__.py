"""Model graders (§9 `score_model`, §10 `label_model`) on any OpenAI-compatible Chat Completions server.

Calls go through `graders.transport` (routing, the HTTP client, rate limits, retries, the shared concurrency
limit, the cache); docs/models.md is the user's guide.

- `prompt`: rendering templated message content (§5.2) and mapping `sampling_params` (§9.2, U38).
- `schemas`: the structured-output schemas (U33, U34, U37) and the json_object/text fallback.
- `grading`: the shared evaluator flow, output parsing and the §9.3 error flags.
- `judge`: `graders judge serve`, an optional local llama.cpp judge for offline plumbing checks.
"""
