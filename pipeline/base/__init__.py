"""The base policy pi_0 and its data: model loading (models, tiny_model, corpus), prompts,
sampling, the scored base pool every optimizer starts from (pool, scoring), the per-point
context (context) and summary rows (measure). May import config/, io, errors, goodhart.rewards
and goodhart.eval; nothing above it."""
