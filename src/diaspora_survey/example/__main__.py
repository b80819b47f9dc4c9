"""``python -m diaspora_survey.example [OUTDIR]``: write the three SYNTHETIC example waves."""
from __future__ import annotations

import sys

from . import generate


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print(__doc__)
        return 0 if args and args[0] in ("-h", "--help") else 2
    outdir = args[0] if args else "raw"
    for path in generate(outdir):
        print(f"wrote {path} (SYNTHETIC)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
