"""goodhart inside other people's trainers. ``goodhart.integrations.trl``: the TRL callback
(GRPOTrainer, RLOOTrainer) that computes the gold-free alarm during training, logs it through the
trainer's loggers and can stop at an alarm (docs/integrations.md).

Imports the pipeline and eval; nothing in goodhart imports this package (tests/test_layout.py).

    ```pycon
    >>> import goodhart.integrations
    >>> goodhart.integrations.__name__
    'goodhart.integrations'

    ```
"""
