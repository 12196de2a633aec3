"""The base policy pi_0 and its data: model loading (models; the built-in tiny model,
tiny_model, trained on corpus; SmolLM2-135M from its GGUF, smollm2; the MiniLM-L6 reward-model backbone,
encoders), prompts, sampling (and
vLLM for pools on a GPU, vllm_engine), the scored base pool every optimizer starts from (pool,
scoring; what its rewards are, identity; with an ensemble of proxies, ensemble; the held-out
proxy's scores, holdout; a pool grown by resolve rounds from its first pass, grow), threads chosen from the free cores (threads), the per-point context
(context) and summary rows (measure).

Imports: config, errors, io, goodhart.rewards, goodhart.eval.
"""
