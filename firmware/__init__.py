"""Vigil: firmware for in-store smart security cameras."""

__version__ = "0.1.0"
