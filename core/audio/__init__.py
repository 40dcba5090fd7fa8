"""Audio in, arrays out: decoding, features, measurements, protocol files (layer 1, the bottom).

    decode     any supported file -> 16 kHz mono float32, the SHA-256 of its bytes
    features   the CQT log-power spectrogram and its frequency axis
    quality    input measurements (level, bandwidth, clipping, SNR ...) and their warnings
    protocol   ASVspoof-format protocol files and whole-file loading of the audio they list

Pure functions of arrays and files. May import: core.jsonsafe only; never a higher layer.
"""
