"""Model interfaces and backends shared by the worker, training and evaluation.

Inference code lives here; training code lives in ``models.training`` and needs the
``train`` extra. Nothing in this package imports a pipeline stage.
"""
