"""catseg-bench: the MESS benchmark for CAT-Seg and other open-vocabulary segmenters."""

__version__ = "0.1.0"
