#!/usr/bin/env python3
"""Render the studio's bundled example line arts into ``src/linecolor/server/static/examples/``.

Reproducible: the same data and the same library versions give byte-identical PNG files and the same
``examples.json`` (no timestamps, fixed drawing parameters). Run from the repository root::

    .venv/bin/python scripts/make_examples.py [--data ../shared/data] [--out src/linecolor/server/static/examples]

What it writes (every image 512 px on the long side, composited on white):

* five OpenMoji 17.0.0 *black outline* emoji (``package/black/svg/<HEXCODE>.svg`` read from the npm tarball with
  :mod:`tarfile`), rendered with cairosvg and binarised (ink < 128 → black): 1F600 grinning face and 1F431 cat face
  (both in the training split), 1F33C blossom, 1F43C panda and 1F680 rocket (all three in the *test* split of
  :func:`linecolor.data.sources.assign_split`, so a trained model has never seen them). CC BY-SA 4.0: these
  derived PNGs stay under CC BY-SA 4.0 with OpenMoji's attribution;
* two DiceBear "Adventurer" line avatars, ids 00267 and 00397 (both in the *test* split), rendered and binarised
  the same way. CC BY 4.0 (Lisa Wischofsky);
* David Revoy's small rough Pepper sketch ``sketches/fig14_pepper.png`` (172×179 grey pencil), upscaled to
  512 px on the long side with Lanczos resampling and left grey (kind ``sketch``: the studio's "Clean up sketch"
  turns it into line art). CC BY 4.0;
* two simple line drawings this script draws itself with Pillow (kind ``line``; the project's own work, MIT).

``examples.json`` is ``{"examples": [{"id", "name", "url", "kind", "attribution", "license"}, ...]}``, the body
the back end answers on ``GET /api/examples``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tarfile
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
SIZE = 512

OPENMOJI_ATTRIBUTION = (
    "All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0 "
    "(https://openmoji.org/, https://creativecommons.org/licenses/by-sa/4.0/)"
)
DICEBEAR_ATTRIBUTION = (
    '"Adventurer" by Lisa Wischofsky (https://www.figma.com/community/file/1184595184137881796), licensed under '
    "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Avatars composed from the DiceBear adventurer style "
    "(dicebear/dicebear); changes: parts combined, colours changed, line-only versions made."
)
REVOY_ATTRIBUTION = (
    "Pepper sketch by David Revoy (www.davidrevoy.com), licensed under CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/); from the sketch_simplification repository by "
    "Edgar Simo-Serra et al."
)
OWN_ATTRIBUTION = "Drawn by the linecolor project (scripts/make_examples.py)"
OWN_LICENSE = "project's own, MIT"

# (hexcode, id, display name)
OPENMOJI = [
    ("1F600", "openmoji-grinning-face", "Grinning face"),
    ("1F431", "openmoji-cat-face", "Cat face"),
    ("1F33C", "openmoji-blossom", "Blossom"),
    ("1F43C", "openmoji-panda", "Panda"),
    ("1F680", "openmoji-rocket", "Rocket"),
]
DICEBEAR = [("00267", "Avatar 00267"), ("00397", "Avatar 00397")]
PEPPER = "fig14_pepper.png"


def _binarise(rgba: Image.Image) -> Image.Image:
    """Composite an RGBA rendering on white, convert to grey and threshold at 128 (ink 0, paper 255)."""
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    grey = Image.alpha_composite(white, rgba.convert("RGBA")).convert("L")
    return grey.point(lambda v: 0 if v < 128 else 255, mode="L")


def _render_svg(svg: bytes, size: int = SIZE) -> Image.Image:
    import cairosvg  # only this script needs cairo at build time

    png = cairosvg.svg2png(bytestring=svg, output_width=size, output_height=size)
    with Image.open(io.BytesIO(png)) as im:
        return _binarise(im)


def _save(image: Image.Image, path: Path) -> None:
    # Mode "L" with only 0/255 values; optimize=True keeps files small. Pillow writes no time stamp.
    image.save(path, format="PNG", optimize=True)


def _draw_house() -> Image.Image:
    """A house with a door, two windows, a chimney, a tree and a sun: closed regions to colour."""
    im = Image.new("L", (SIZE, SIZE), 255)
    d = ImageDraw.Draw(im)
    w = 6
    d.line([(20, 440), (492, 440)], fill=0, width=w)                       # ground
    d.rectangle([110, 250, 330, 440], outline=0, width=w)                  # walls
    d.polygon([(90, 255), (220, 140), (350, 255)], outline=0, width=w)     # roof
    d.line([(270, 185), (270, 150), (300, 150), (300, 211)], fill=0, width=w, joint="curve")  # chimney above the roof
    d.rectangle([195, 340, 245, 440], outline=0, width=w)                  # door
    d.ellipse([230, 385, 240, 395], outline=0, width=3)                    # door knob
    for x0 in (130, 265):                                                  # windows with crosses
        d.rectangle([x0, 285, x0 + 45, 330], outline=0, width=w)
        d.line([(x0 + 22, 285), (x0 + 22, 330)], fill=0, width=3)
        d.line([(x0, 307), (x0 + 45, 307)], fill=0, width=3)
    d.rectangle([405, 340, 430, 440], outline=0, width=w)                  # tree trunk
    d.ellipse([360, 220, 475, 350], outline=0, width=w)                    # tree crown
    d.ellipse([400, 40, 470, 110], outline=0, width=w)                     # sun
    for k in range(8):
        a = k * math.pi / 4
        c = (435, 75)
        d.line([(c[0] + 45 * math.cos(a), c[1] + 45 * math.sin(a)),
                (c[0] + 62 * math.cos(a), c[1] + 62 * math.sin(a))], fill=0, width=4)
    return im


def _draw_fish() -> Image.Image:
    """A fish with stripes, a bubble trail and a few water plants."""
    im = Image.new("L", (SIZE, SIZE), 255)
    d = ImageDraw.Draw(im)
    w = 6
    d.ellipse([100, 170, 360, 330], outline=0, width=w)                    # body
    d.polygon([(352, 250), (450, 180), (450, 320)], outline=0, width=w)    # tail
    d.ellipse([145, 225, 175, 255], outline=0, width=w)                    # eye
    d.ellipse([156, 236, 166, 246], fill=0)                                # pupil
    for x in (230, 285):                                                   # stripes
        d.arc([x - 60, 175, x + 20, 325], start=-70, end=70, fill=0, width=w)
    d.polygon([(210, 175), (250, 120), (290, 180)], outline=0, width=w)    # dorsal fin
    for i, (x, y, r) in enumerate([(90, 150, 14), (70, 105, 18), (95, 55, 22)]):
        d.ellipse([x - r, y - r, x + r, y + r], outline=0, width=4)        # bubbles
    for x0 in (50, 420):                                                   # two seaweed leaves each
        for dx in (0, 34):
            x = x0 + dx
            left = [(x + 8 * math.sin(t / 12), 470 - t) for t in range(0, 110, 4)]
            right = [(x + 22 + 8 * math.sin(t / 12), 470 - t) for t in range(100, -1, -4)]
            d.polygon(left + right, outline=0, width=4)
    d.line([(20, 470), (492, 470)], fill=0, width=w)                       # sea floor
    return im


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared data folder")
    p.add_argument("--out", type=Path, default=REPO / "src" / "linecolor" / "server" / "static" / "examples")
    args = p.parse_args(argv)
    data: Path = args.data
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    examples: list[dict[str, str]] = []

    def add(ident: str, name: str, kind: str, attribution: str, license_: str, image: Image.Image) -> None:
        filename = f"{ident}.png"
        _save(image, out / filename)
        examples.append({"id": ident, "name": name, "url": f"/static/examples/{filename}", "kind": kind,
                         "attribution": attribution, "license": license_})

    with tarfile.open(data / "openmoji-17.0.0.tgz", "r:gz") as tar:
        for hexcode, ident, name in OPENMOJI:
            member = tar.extractfile(f"package/black/svg/{hexcode}.svg")
            if member is None:
                raise SystemExit(f"OpenMoji {hexcode} is not a regular file in the tarball")
            with member:
                svg = member.read()
            add(ident, name, "line", OPENMOJI_ATTRIBUTION, "CC BY-SA 4.0", _render_svg(svg))

    add("own-house", "House and tree", "line", OWN_ATTRIBUTION, OWN_LICENSE, _draw_house())
    add("own-fish", "Fish", "line", OWN_ATTRIBUTION, OWN_LICENSE, _draw_fish())

    for avatar_id, name in DICEBEAR:
        svg = (data / "dicebear-adventurer" / f"{avatar_id}_line.svg").read_bytes()
        add(f"dicebear-adventurer-{avatar_id}", name, "line", DICEBEAR_ATTRIBUTION, "CC BY 4.0",
            _render_svg(svg))

    with Image.open(data / "sketches" / PEPPER) as sketch:
        grey = sketch.convert("L")
    scale = SIZE / max(grey.size)
    grey = grey.resize((round(grey.width * scale), round(grey.height * scale)), Image.Resampling.LANCZOS)
    add("revoy-pepper-sketch", "Pepper", "sketch", REVOY_ATTRIBUTION,
        "CC BY 4.0", grey)

    (out / "examples.json").write_text(json.dumps({"examples": examples}, indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    total = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {len(examples)} examples to {out} ({total / 1024:.0f} KiB)")
    if total > 1024 * 1024:
        print("error: bundled examples exceed 1 MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
