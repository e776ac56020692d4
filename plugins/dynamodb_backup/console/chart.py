"""The run tab's chart: units consumed per second (a step line over a light area) against the allowed rate.

Readable at any volume: the y axis gets round ticks (1, 2 or 5 times a power of ten) with as many decimals as
they need, so a run that read 0.3 units/s shows 0.1, 0.2, 0.3 rather than 0, 0, 0; and when the allowed rate
is far above what was used (a small table on a big one's capacity), the axis follows the consumption and the
allowed line is named at the top as off the scale instead of squashing the run into the bottom pixel.
Colors come from the page's theme variables (light and dark mode).
"""

from __future__ import annotations

import math

#: The allowed line is drawn in scale while it is at most this many times the consumed peak.
OFF_SCALE = 4.0


def nice_ticks(peak: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``peak`` (about ``count`` steps)."""
    if peak <= 0:
        return [0.0, 1.0]
    raw = peak / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    top = math.ceil(peak / step - 1e-9) * step
    return [round(i * step, 12) for i in range(round(top / step) + 1)]


def tick_text(value: float, step: float) -> str:
    digits = max(0, -math.floor(math.log10(step))) if 0 < step < 1 else 0
    if digits == 0 and step % 1:
        digits = 1
    return f"{value:,.{digits}f}"


def chart_svg(series: list[tuple[float, float]], allowed: float | None, width: int = 720, height: int = 240,
              unit: str = "read units/s") -> str:
    if not series:
        return ("<p class='muted'>No capacity was recorded for this run (one recorded before 5 s intervals were, "
                "a pitr export, which reads no capacity, or a restore still loading).</p>")
    left, bottom, top, right = 64, 34, 22, 16
    plot_w, plot_h = width - left - right, height - top - bottom
    step_s = series[1][0] - series[0][0] if len(series) > 1 else 5.0
    span = max(series[-1][0] + step_s, 1.0)
    consumed_peak = max(v for _, v in series)
    in_scale = allowed is not None and allowed > 0 and (consumed_peak <= 0 or allowed <= OFF_SCALE * consumed_peak)
    ticks = nice_ticks(max(consumed_peak, allowed or 0.0) if in_scale else consumed_peak)
    y_top = ticks[-1]
    tick_step = ticks[1] - ticks[0]

    def x(t: float) -> float:
        return left + t / span * plot_w

    def y(v: float) -> float:
        return top + plot_h - min(v, y_top) / y_top * plot_h

    points = []
    for t, v in series:
        points += [f"{x(t):.1f},{y(v):.1f}", f"{x(t + step_s):.1f},{y(v):.1f}"]
    base = f"{x(series[-1][0] + step_s):.1f},{y(0):.1f} {x(series[0][0]):.1f},{y(0):.1f}"
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' id='capacity-chart' class='chart' viewBox='0 0 {width} "
             f"{height}' role='img' aria-label='{unit} over the run'>"]
    for value in ticks:
        parts.append(f"<line class='grid' x1='{left}' y1='{y(value):.1f}' x2='{left + plot_w}' y2='{y(value):.1f}'/>"
                     f"<text class='tick' x='{left - 6}' y='{y(value) + 4:.1f}' text-anchor='end'>"
                     f"{tick_text(value, tick_step)}</text>")
    parts += [f"<line class='axis' x1='{left}' y1='{top + plot_h}' x2='{left + plot_w}' y2='{top + plot_h}'/>",
              f"<line class='axis' x1='{left}' y1='{top}' x2='{left}' y2='{top + plot_h}'/>",
              f"<polygon class='area' points='{' '.join(points)} {base}'/>",
              f"<polyline class='consumed' points='{' '.join(points)}'/>"]
    if allowed:
        if in_scale:
            parts.append(f"<line class='allowed' x1='{left}' y1='{y(allowed):.1f}' x2='{left + plot_w}' "
                         f"y2='{y(allowed):.1f}'/><text class='allowed-label' x='{left + plot_w - 4}' "
                         f"y='{y(allowed) - 5:.1f}' text-anchor='end'>allowed {allowed:,.1f}</text>")
        else:
            parts.append(f"<text class='allowed-label off-scale' x='{left + plot_w - 4}' y='{top - 8}' "
                         f"text-anchor='end'>allowed {allowed:,.1f} &#8593; (off this scale)</text>")
    for t in [*nice_ticks(span, 6)[:-1], span]:
        if t <= span and (t == span or span - t > span / 12):
            parts.append(f"<text x='{x(t):.1f}' y='{height - 14}' text-anchor='middle'>{t:,.0f} s</text>")
    parts.append(f"<text x='{left}' y='{top - 8}'>{unit}</text></svg>")
    return "".join(parts)
