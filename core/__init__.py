"""The engine of the synthetic speech detector: decoding, models, explanations, store.

Start at core.service.Engine; the README's Architecture section maps the packages.
"""
