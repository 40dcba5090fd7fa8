"""From model scores to one verdict an analyst can trust (layer 3).

    metrics              EER, Cllr, minimum Cllr, DET points
    calibration          per-model maps to calibrated log-odds, fusion weights, bands
    calibration_metrics  ECE, reliability tables and their bootstrap intervals
    combined             the combined verdict: fused P(spoof), band, widening by warnings
    assessment           one analysis' verdicts, quality and calibration, put together

May import: core.detectors, core.store, core.audio, core.jsonsafe.
"""
