"""The console's page shell (Airflow's look, see :mod:`theme`) and the small formatters every page uses."""

from __future__ import annotations

from datetime import timedelta
from html import escape

from dynamodb_backup.console.theme import STYLE, head_script

#: Shown where a figure was not recorded (never a bare "?").
NOT_RECORDED = "&ndash;"


def page(title: str, body: str) -> str:
    """A whole HTML page: no CDN, no external file (there may be no internet); the theme script runs first."""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style><script>{head_script()}</script></head><body>{body}</body></html>")


def message_html(title: str, text: str) -> str:
    return page(title, f"<h2>{escape(title)}</h2><p>{escape(text)}</p>")


def airflow_link(href: str, text: str, css: str = "") -> str:
    """A link to one of Airflow's own pages: the theme script opens it in Airflow's UI, not in the frame."""
    css_class = f" class='{css}'" if css else ""
    return f"<a data-airflow href='{escape(href)}'{css_class}>{text}</a>"


def num(value: float | int | None, digits: int = 0) -> str:
    return NOT_RECORDED if value is None else f"{value:,.{digits}f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NOT_RECORDED
    if seconds < 1:
        return "&lt;1 s"
    return str(timedelta(seconds=round(seconds)))


def rate(value: float | None, at_least: bool = False) -> str:
    """Items per second: enough digits to read a small rate, ``>=`` when only a bound is known."""
    if value is None:
        return NOT_RECORDED
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return ("&ge;" if at_least else "") + f"{value:,.{digits}f}"


def age_text(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{max(seconds, 0):.0f}s"
