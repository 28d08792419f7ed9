#!/usr/bin/env python3
"""The public API of backdrop-core, read from its rustdoc HTML: one line per item, method,
variant and public field. `.ci/public-api` compares it with crates/core/public-api.txt, so that
a change to the public surface is always deliberate (and shows in review).

Usage: public_api.py DOC_DIR   (DOC_DIR: target/doc/backdrop_core)
"""
import html
import re
import sys
from pathlib import Path

KINDS = {
    "struct": "struct",
    "enum": "enum",
    "trait": "trait",
    "fn": "fn",
    "type": "type",
    "constant": "const",
    "macro": "macro",
    "static": "static",
}


def members(page: str) -> list[str]:
    """Inherent methods, trait methods, variants and public fields documented on an item page
    (trait implementations such as Clone are left out: they are listed with their trait)."""
    # Everything before the trait implementations: the item's own members.
    own = re.split(r'<h2 id="(?:trait-implementations|synthetic-implementations|'
                   r'blanket-implementations|foreign-impls|implementors)"', page)[0]
    found = []
    for kind, name in re.findall(
        r'id="(method|tymethod|variant|structfield|associatedconstant|associatedtype)\.([A-Za-z0-9_]+)"',
        own,
    ):
        label = {"tymethod": "method", "structfield": "field",
                 "associatedconstant": "const", "associatedtype": "type"}.get(kind, kind)
        entry = f"{label} {name}"
        if entry not in found:
            found.append(entry)
    return found


def main() -> int:
    doc = Path(sys.argv[1])
    index = (doc / "all.html").read_text()
    lines = []
    for href, name in re.findall(r'<li><a href="([^"]+\.html)">([^<]+)</a></li>', index):
        kind = KINDS.get(Path(href).name.split(".")[0])
        if kind is None:
            continue
        path = html.unescape(name)
        lines.append(f"{kind} {path}")
        if kind in ("struct", "enum", "trait"):
            for member in members((doc / href).read_text()):
                lines.append(f"{kind} {path}: {member}")
    print("\n".join(sorted(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
