"""The networks: Res-TSSDNet 1D/2D (tssdnet.py), Inc-TSSDNet (inc_tssdnet.py) and AASIST /
AASIST-L (aasist.py)."""
