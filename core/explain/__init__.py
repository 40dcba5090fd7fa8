"""Explanation methods: one file each, registered in EXPLAINERS (see base.py)."""

from .base import Explanation

EXPLAINERS: dict = {}
