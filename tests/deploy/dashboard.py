"""The dashboard of infra/dashboard.tf, rendered offline, and a sketch of its layout.

``render`` does what Terraform's ``templatefile`` does with this template (``${name}`` from the
arguments dashboard.tf passes, ``$${`` for a literal ``${``) and parses the JSON. ``sketch``
draws the mosaic layout as a PNG: one box per tile with its title and what it charts. It needs
matplotlib, which only this drawing uses (``pip install matplotlib``):

    python -m tests.deploy.dashboard sketch docs/dashboard.png
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

INFRA = Path(__file__).resolve().parents[2] / "infra"
TEMPLATE = INFRA / "dashboard.json.tftpl"
# Values a deployment would pass (the defaults of this repository's Terraform).
EXAMPLE = {
    "worker_job_name": "comfy-worker",
    "jobs_subscription": "comfy-jobs-worker",
    "dead_letter_subscription": "comfy-dead-letter-hold",
    "task_usd_per_hour": "1.42092",
}
_PLACEHOLDER = re.compile(r"(?<!\$)\$\{([a-z_]+)\}")


def template_arguments() -> set[str]:
    """The names dashboard.tf passes to templatefile()."""
    text = (INFRA / "dashboard.tf").read_text()
    call = text[text.index("templatefile(") : text.index("})", text.index("templatefile("))]
    return set(re.findall(r"^\s*([a-z_]+)\s*=", call, re.M))


def placeholders(template: str | None = None) -> set[str]:
    return set(_PLACEHOLDER.findall(template or TEMPLATE.read_text()))


def render(values: dict[str, str] | None = None) -> dict[str, Any]:
    values = values or EXAMPLE
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], TEMPLATE.read_text())
    doc: dict[str, Any] = json.loads(text.replace("$${", "${"))
    return doc


def queries(widget: dict[str, Any]) -> list[str]:
    """Every filter and PromQL query a widget charts."""
    found = []
    for data in widget.get("xyChart", {}).get("dataSets", []):
        query = data["timeSeriesQuery"]
        if "timeSeriesFilter" in query:
            found.append(query["timeSeriesFilter"]["filter"])
        if "prometheusQuery" in query:
            found.append(query["prometheusQuery"])
    return found


def _label(widget: dict[str, Any]) -> str:
    charted = []
    for q in queries(widget):
        m = re.search(r'metric\.type="([^"]+)"', q) or re.search(r"([a-z_]+:[a-z_]+)", q)
        if m:
            charted.append("/".join(m.group(1).split("/")[-2:]).split(":")[-1])
    kind = "PromQL" if "prometheusQuery" in json.dumps(widget) else "filter"
    return "\n".join(dict.fromkeys(charted)) + (f"\n({kind})" if charted else "")


def sketch(out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyBboxPatch
    except ImportError:
        sys.exit("sketch needs matplotlib: .venv/bin/python -m pip install matplotlib")
    doc = render()
    tiles = doc["mosaicLayout"]["tiles"]
    columns = doc["mosaicLayout"]["columns"]
    rows = max(t["yPos"] + t["height"] for t in tiles)
    fig, ax = plt.subplots(figsize=(15, 15 * rows / columns / 1.1))
    ax.set_xlim(0, columns)
    ax.set_ylim(rows, 0)
    ax.axis("off")
    for tile in tiles:
        x, y, w, h = tile["xPos"], tile["yPos"], tile["width"], tile["height"]
        widget = tile["widget"]
        text_tile = "text" in widget
        ax.add_patch(
            FancyBboxPatch(
                (x + 0.3, y + 0.3),
                w - 0.6,
                h - 0.6,
                boxstyle="round,pad=0,rounding_size=0.6",
                facecolor="#eef3fb" if not text_tile else "#fff8e6",
                edgecolor="#4a6fa5",
            )
        )
        ax.text(x + 1, y + 1.4, widget["title"], fontsize=9.5, weight="bold", va="top")
        if text_tile:
            wrapped = textwrap.fill(widget["text"]["content"], 235)
            ax.text(x + 1, y + 2.2, wrapped, fontsize=7, va="top")
            continue
        ax.text(x + 1, y + 3.2, _label(widget), fontsize=7.5, va="top", family="monospace")
        ax.plot([x + 1.5, x + w - 1.5], [y + h - 1.6] * 2, color="#9ab", lw=0.8)
        ax.plot(
            [x + 1.5 + i * (w - 3) / 7 for i in range(8)],
            [y + h - 2.2 - (i * 37 % 5) * 0.55 for i in range(8)],
            color="#4a6fa5",
            lw=1.2,
        )
    ax.set_title(f"{doc['displayName']} (layout sketch of infra/dashboard.json.tftpl)", fontsize=11)
    fig.savefig(out, dpi=90, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "sketch":
        sketch(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
