"""The gold-free Goodhart alarm (eval/alarm.py): the public wrappers.

The statistics live in goodhart.eval.alarm; the classes here subclass its classes (same fields,
same behaviour) only to carry the public docstrings, and the functions forward every keyword they
do not name, so new options of the alarm (a calibrated level, say) pass straight through.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from goodhart.eval import alarm as _alarm


class BaseStats(_alarm.BaseStats):
    """What the alarm keeps of the base policy's proxy rewards: per-prompt means, the bulk's
    sub-Gaussian sigma (read from central quantiles, so the tail does not move it), the largest
    centred base reward. Build it with ``BaseStats.from_pool(base_proxy)`` from a (P, N) array of
    base rewards (``per_prompt=False``: one global mean, for training prompts the pool lacks).

    ```pycon
    >>> import numpy as np
    >>> from goodhart import BaseStats
    >>> base = BaseStats.from_pool(np.random.default_rng(0).normal(size=(8, 4096)))
    >>> round(base.sigma, 1), base.n
    (1.0, 32768)

    ```
    """


class AlarmRule(_alarm.AlarmRule):
    """The alarm's test (fields documented in goodhart.eval.alarm.AlarmRule): ``alpha``, the
    false-alarm rate under the light-tailed null (``alarm`` needs it rejected at level alpha:
    ``goodhart.eval.alarm.significant``); ``share``, the least
    share of the gain carried beyond the bulk's 0.9 quantile that counts as material; ``n_null`` and ``null_seed``, the null's replicates;
    ``min_gain`` and ``noise_z``, below which a gain is noise. ``dv_alarm`` and ``watch`` are the
    DV-ratio baseline's thresholds (they decide nothing in the calibrated alarm).

    ```pycon
    >>> from goodhart import AlarmRule
    >>> AlarmRule(alpha=0.01).alpha
    0.01

    ```
    """


class Alarm(_alarm.Alarm):
    """One alarm reading: ``level`` (``quiet`` / ``watch`` / ``alarm``), ``score`` (1 = alarm), and
    the evidence: ``gain``, ``kl``, ``sigma``, ``bound`` (sigma sqrt(2 KL)), ``dv_ratio`` (gain /
    bound), ``top_share``, ``beyond_max``, ``disagreement``, ``n_eff``. ``row()`` gives the metric
    names of eval/metrics.py (``alarm/score``, ``alarm/level``, ...).

    ```pycon
    >>> import numpy as np
    >>> from goodhart import BaseStats, alarm
    >>> rng = np.random.default_rng(0)
    >>> a = alarm(rng.normal(0.5, 1.0, size=(8, 64)), kl=0.125, base=BaseStats.from_pool(rng.normal(size=(8, 4096))))
    >>> a.level, round(a.dv_ratio, 1)
    ('quiet', 0.9)
    >>> sorted(a.row())[:2]
    ['alarm/beyond_max', 'alarm/code']

    ```
    """


def _public(a: _alarm.Alarm) -> Alarm:
    """The same reading as the public class (every attribute kept, whatever eval adds)."""
    out = Alarm.__new__(Alarm)
    out.__dict__.update(vars(a))
    return out


def alarm(
    samples: np.ndarray,
    kl: float,
    base: _alarm.BaseStats,
    weights: np.ndarray | None = None,
    rule: _alarm.AlarmRule | None = None,
    **options: Any,
) -> Alarm:
    """Is this policy's proxy being won through the tail? Reads proxy rewards, KL and the base
    statistics only: never a utility.

    ``samples``: (P, M) proxy rewards of the policy's samples, row x for prompt x of ``base`` (or a
    flat (B,) batch with a global-mean ``base``); ``kl``: the policy's mean sequence KL to the base
    in nats (NaN if unknown: the Donsker-Varadhan evidence is then skipped); ``weights``: same shape,
    rows summing to 1, for a policy given as weighted base samples. Other keywords (``others`` for
    the disagreement of several reward models, ...) go to goodhart.eval.alarm.alarm.

    A Gaussian reward tilted to KL 0.125 gains sigma sqrt(2 KL) = 0.5, exactly the bound (quiet);
    a policy whose gain sits in a few huge samples (2 of 64 at 60 sigma) alarms: its gain is far
    past what the light-tailed null allows at this KL (p < alpha):

    ```pycon
    >>> import numpy as np
    >>> from goodhart import BaseStats, alarm
    >>> rng = np.random.default_rng(0)
    >>> base = BaseStats.from_pool(rng.normal(size=(8, 4096)))
    >>> alarm(rng.normal(0.5, 1.0, size=(8, 64)), kl=0.125, base=base).level
    'quiet'
    >>> hacked = rng.normal(size=(8, 64)); hacked[:, :2] = 60.0
    >>> alarm(hacked, kl=0.125, base=base).level
    'alarm'

    ```
    """
    return _public(
        _alarm.alarm(samples, kl, base, weights, rule if rule is not None else _alarm.AlarmRule(), **options)
    )


def tilt_alarm(base_proxy: np.ndarray, beta: float, kl: float, rule: _alarm.AlarmRule | None = None) -> Alarm:
    """The alarm of the exact KL-regularised optimum pi_beta ~ pi_0 exp(r / beta), as softmax(r / beta)
    weights on a (P, N) pool of base proxy rewards; ``kl``: that tilt's KL.

    ```pycon
    >>> import numpy as np
    >>> from goodhart import tilt_alarm
    >>> pool = np.random.default_rng(0).pareto(1.5, size=(8, 4096))
    >>> tilt_alarm(pool, beta=0.3, kl=2.0).level
    'alarm'

    ```
    """
    return _public(_alarm.tilt_alarm(base_proxy, beta, kl, rule if rule is not None else _alarm.AlarmRule()))


def bon_alarm(base_proxy: np.ndarray, n: int, kl: float, rule: _alarm.AlarmRule | None = None) -> Alarm:
    """The alarm of best-of-n, as order-statistic weights on a (P, N) pool of base proxy rewards;
    ``kl``: best-of-n's KL (log n - (n - 1) / n for continuous rewards).

    ```pycon
    >>> import math, numpy as np
    >>> from goodhart import bon_alarm
    >>> pool = np.random.default_rng(0).normal(size=(8, 4096))
    >>> bon_alarm(pool, n=16, kl=math.log(16) - 15 / 16).level
    'quiet'

    ```
    """
    return _public(_alarm.bon_alarm(base_proxy, n, kl, rule if rule is not None else _alarm.AlarmRule()))
