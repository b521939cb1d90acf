"""The HTML page ``dvc plots show`` and ``dvc plots diff`` write, with Vega inside it.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so offline (a cluster
node, a train, an air-gapped lab) it shows empty boxes. ``.dvc/config`` names this page
instead (``plots.html_template``): the same placeholders DVC fills, and the three libraries
inlined as one classic script, so the page draws with no network. The bundle comes from
``vl-convert-python`` (a build-time tool only: ``pip install vl-convert-python``), pinned
to Vega-Lite 5 because DVC's templates declare the v5 schema.

    python scripts/offline_plots.py            # (re)write .dvc/plots/offline.html
    python scripts/offline_plots.py --check    # exit 1 if the page is not the one it makes
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / ".dvc" / "plots" / "offline.html"
VEGA_LITE = "5.21"
# What DVC replaces in the page (dvc_render.html.HTML): the plots go into {plot_divs};
# {scripts}, where DVC would put its CDN <script> tags, is deliberately absent.
PLACEHOLDERS = ("{plot_divs}", "{refresh_tag}")
app = typer.Typer(add_completion=False)


def page(bundle: str, versions: str) -> str:
    """The HTML template around ``bundle`` (JavaScript defining window.vegaEmbed)."""
    found = [name for name in (*PLACEHOLDERS, "{scripts}") if name in bundle]
    if found:
        raise ValueError(f"the Vega bundle contains DVC's placeholder(s) {found}")
    # A "</script" inside the code would end the tag early; "<\/script" is the same string.
    script = bundle.replace("</script", "<\\/script")
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n    {refresh_tag}\n"
        '    <meta charset="utf-8">\n    <title>DVC Plot</title>\n'
        f"    <!-- {versions}, inlined by scripts/offline_plots.py: no network needed -->\n"
        f"    <script>\n{script}\n    </script>\n"
        "    <style>\n        table {\n            border-spacing: 15px;\n        }\n"
        "    </style>\n</head>\n<body>\n    {plot_divs}\n</body>\n</html>\n"
    )


def build() -> str:
    import vl_convert

    versions = (
        f"Vega {vl_convert.get_vega_version()}, Vega-Lite {VEGA_LITE}, "
        f"Vega-Embed {vl_convert.get_vega_embed_version()} "
        f"(vl-convert-python {vl_convert.__version__})"
    )
    return page(vl_convert.javascript_bundle(vl_version=VEGA_LITE), versions)


@app.command()
def main(
    check: Annotated[bool, typer.Option("--check", help="compare, do not write")] = False,
) -> None:
    """Write (or check) the offline page that .dvc/config names for dvc plots."""
    made = build()
    if check:
        current = PAGE.read_text(encoding="utf8") if PAGE.exists() else ""
        if current != made:
            print(f"{PAGE.relative_to(REPO)} is out of date: run scripts/offline_plots.py")
            sys.exit(1)
        return
    PAGE.write_text(made, encoding="utf8")
    print(f"wrote {PAGE.relative_to(REPO)} ({len(made) // 1024} KiB)")


if __name__ == "__main__":
    app()
