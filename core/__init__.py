"""The engine of the synthetic speech detector: decoding, models, explanations, store.

Start at core.engine.service.Engine; the README's Architecture section maps the packages.
"""
