"""Print the chapter files of _toc.yml, one per line, in reading order."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]] + [chapter["file"] for chapter in toc.get("chapters", [])]
    return [f"{entry}.md" for entry in entries]


if __name__ == "__main__":
    print("\n".join(toc_files()))
