"""The detectors: networks, their front ends and weights, and whole-file scoring (layer 2).

    networks/     the nn.Modules (Res-TSSDNet 1D/2D, Inc-TSSDNet, AASIST / AASIST-L)
    archs         architecture table: network, front end, Grad-CAM layer, training recipe
    registry      ModelSpec, MODELS, checksummed weights, load_model
    frontends     waveform / CQT front ends (crops and batches)
    checkpoints   reading and fitting state dicts, SHA-256 checks
    user_registry, user_weights   models a user adds with ``python -m core weights add``
    precision     the arithmetic each model scores in (float32 / bfloat16)
    detect        Detector and Verdict: sliding windows over a whole file
    scheduler     fair turns on the shared networks and cancel tokens, which scoring,
                  explanations and the engine all take

May import: core.audio, core.jsonsafe. Never core.store, nor anything above.
"""
