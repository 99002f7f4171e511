"""`bench report`: one self-contained HTML page about result folders (see :mod:`.build`)."""

from catseg_bench.report.build import build_report

__all__ = ["build_report"]
