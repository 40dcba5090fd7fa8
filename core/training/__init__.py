"""Training and fitting from corpora: data, augmentation, vocoders, train, evaluate (layer 3).

    data           cropped, optionally augmented training batches (TrainData)
    augment        codecs, noise, band limits, gain: the degradations of training and checks
    vocode         copy-synthesis of training bona fide: training-only spoof systems
    train, record  the training loop (resumable) and its JSON sidecar (TrainConfig)
    dev_selection  epoch and model choice on dev and its degraded copies
    evaluate       scoring a protocol: EER per attack and overall
    robustness     EER under each degradation
    calibrate      fitting core.judgement's calibration from dev scores

May import: core.judgement, core.detectors, core.store, core.audio, core.jsonsafe.
Nothing here runs in the dashboard.
"""
