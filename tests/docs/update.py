"""Rewrite the docs' expected command outputs from what the commands print today (doccmd D6).

    python -m tests.docs.update            # README.md and docs/*.md, slow commands included
    python -m tests.docs.update --fast     # skip the commands marked slow
    python -m tests.docs.update docs/tutorial.md

Review the diff (``git diff README.md docs/``) before committing it: a changed
number of executions or a changed verdict may be a regression, not a doc fix.
"""

from __future__ import annotations

import argparse
import pathlib

from .doccmd import ROOT, doc_files, update


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.docs.update", description=__doc__.splitlines()[0])
    parser.add_argument("docs", nargs="*", help="Markdown files (default: README.md and docs/*.md)")
    parser.add_argument("--fast", action="store_true", help="keep the expected output of commands marked slow")
    args = parser.parse_args(argv)
    docs = [pathlib.Path(d).resolve() for d in args.docs] or doc_files()
    changed = update(docs, include_slow=not args.fast)
    for what in changed:
        print(f"updated {what}")
    print(f"{len(changed)} block(s) updated in {len(docs)} file(s) under {ROOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
