"""Corpus runs: the Engine over a labelled corpus, locally or on Ray, and their summaries (layer 5).

    batch        the driver: plan, run, collect, store (resumable)
    tasks        one file's work, as a local worker or a Ray task computes it
    ray_cluster  Ray tasks, weights shipped once through the object store
    ray_connect  joining a cluster: address, tokens, runtime_env, every node's packages
    serve        the dashboard's models on Ray Serve (the Engine's compute backend)
    replica      one model's Serve replica: verdicts, explanations, batched short files
    summary      per-attack EERs and where the evidence sits, for the Corpus page

It drives the Engine, so it sits above it. May import: core.engine and everything below;
never core.cli or the ui.
"""
