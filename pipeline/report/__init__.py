"""Renderers of the ``analyze`` report (a plain dict from ``pipeline.analyze``): text, JSON and
one self-contained HTML page."""

from pipeline.report.html import render_html
from pipeline.report.text import render_json, render_text

__all__ = ["render_html", "render_json", "render_text"]
