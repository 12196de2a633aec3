"""A Hugging Face sequence-classification reward seen at the token level: scores of token-id
sequences (batched) and the gradient of the reward with respect to one-hot input tokens.

The sequence x being probed sits where a completion would: the model reads
prefix + x + suffix, where prefix = the special tokens the tokenizer puts first + the prompt's
tokens, and suffix = the special tokens it puts last (e.g. BERT's [SEP]). That is exactly what
`HFClassifierReward.score([prompt], [text])` feeds the model when `text` re-tokenizes to x
(see `round_trips`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from goodhart.rewards.plugins import HFClassifierReward


def _context_ids(tok, prompt: str) -> tuple[list[int], list[int]]:
    """(prefix, suffix) token ids around a sequence that follows `prompt`."""
    special = set(tok.all_special_ids)
    probe = tok("a")["input_ids"]  # how many specials the tokenizer adds after the text
    n_trail = 0
    while n_trail < len(probe) and probe[len(probe) - 1 - n_trail] in special:
        n_trail += 1
    full = tok(prompt)["input_ids"]
    cut = len(full) - n_trail
    return list(full[:cut]), list(full[cut:])


class TokenRM:
    """Token-level access to one logit of an HF sequence classifier (the reward)."""

    def __init__(self, reward: HFClassifierReward, prompt: str, whole_characters: bool = False):
        """whole_characters: allow only tokens that decode on their own to whole printable
        characters (no byte fragments, which decode to U+FFFD and never survive a text round trip)."""
        import torch

        self.reward, self.prompt = reward, prompt
        self.model, self.tok, self.label = reward.model, reward.tok, reward.label
        for p in self.model.parameters():  # gradients flow to the one-hot tokens only
            p.requires_grad_(False)
        self.device = self.model.device
        self.prefix, self.suffix = _context_ids(self.tok, prompt)
        self.embedding = self.model.get_input_embeddings().weight  # (V, d)
        vocab = self.embedding.shape[0]
        allowed = torch.zeros(vocab, dtype=torch.bool)
        allowed[: min(vocab, len(self.tok))] = True  # rows past the tokenizer are padding
        allowed[[i for i in self.tok.all_special_ids if i < vocab]] = False  # pad/eos would move the pooled token
        if whole_characters:
            ids = allowed.nonzero().squeeze(1).tolist()
            pieces = self.tok.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)
            bad = [i for i, t in zip(ids, pieces) if not t or "\ufffd" in t or not t.replace(" ", "").isprintable()]
            allowed[bad] = False  # also control characters (\x00, \x1b, ...): no one types them
        self.allowed = allowed.to(self.device)
        self.allowed_ids = allowed.nonzero().squeeze(1).to(self.device)

    @property
    def vocab(self) -> int:
        return int(self.embedding.shape[0])

    def context_length(self) -> int:
        return len(self.prefix) + len(self.suffix)

    def _full(self, x):
        import torch

        b = x.shape[0]
        pre = torch.tensor(self.prefix, dtype=torch.long, device=self.device).expand(b, -1)
        suf = torch.tensor(self.suffix, dtype=torch.long, device=self.device).expand(b, -1)
        return torch.cat([pre, x.to(self.device), suf], dim=1)  # (B, P + L + S)

    def random(self, n: int, length: int, generator) -> object:
        """(n, length) uniform random allowed token ids."""
        import torch

        idx = torch.randint(0, len(self.allowed_ids), (n, length), generator=generator)
        return self.allowed_ids.cpu()[idx]

    def score(self, x, batch_size: int = 256) -> np.ndarray:
        """Rewards of the (B, L) id sequences x, batched, no grad."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, x.shape[0], batch_size):
                ids = self._full(x[i : i + batch_size])  # no padding: every row has the same length
                logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits  # (B, labels)
                out.append(logits[:, self.label].float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def gradient(self, x) -> tuple[object, float]:
        """(d reward / d one-hot tokens (L, V) as float32 on CPU, reward of x) for one sequence x (L,).

        r(x) is a function of the embeddings one_hot(x) @ W; its gradient in the one-hot
        coordinates ranks, per position, the tokens whose swap raises r the most to first order."""
        import torch

        w = self.embedding
        one_hot = torch.zeros(x.shape[0], w.shape[0], dtype=w.dtype, device=self.device)  # (L, V)
        one_hot.scatter_(1, x.to(self.device)[:, None], 1.0)
        one_hot.requires_grad_(True)
        pre = w[torch.tensor(self.prefix, dtype=torch.long, device=self.device)]
        suf = w[torch.tensor(self.suffix, dtype=torch.long, device=self.device)]
        embeds = torch.cat([pre, one_hot @ w, suf])[None]  # (1, P + L + S, d)
        with torch.enable_grad():
            r = self.model(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], device=self.device))
            value = r.logits[0, self.label]
            value.backward()
        return one_hot.grad.float().cpu(), float(value.detach().float().cpu())

    def texts(self, x) -> list[str]:
        """The text of each (B, L) row (what a completion with these tokens would read)."""
        return self.tok.batch_decode(x.tolist(), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def round_trips(self, x) -> np.ndarray:
        """Which rows of x the reward's text path sees unchanged: tokenizing prompt + text(row)
        gives back prefix + row + suffix (BPE merges across edits can make it differ)."""
        want = self._full(x.cpu()).tolist()
        got = self.tok([self.prompt + t for t in self.texts(x)])["input_ids"]
        return np.array([list(g) == w for g, w in zip(got, want)], dtype=bool)

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """The reward through its ordinary text path (HFClassifierReward.score)."""
        return self.reward.score([self.prompt] * len(texts), list(texts))
