"""Build the shipped offline samples of ``doc-chat`` and ``abg-coqa`` from the texts under scripts/sample_sources.

The articles and stories were written for this project. Run from the repository root:
    .venv/bin/python scripts/build_doc_abg_samples.py
Every third item goes to ``train``, the rest to ``test`` (about 1/3 vs 2/3). Output is deterministic.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from collab_harness_plugins.tasks.abg_coqa import make_example_fields
from collab_harness_plugins.tasks.doc_chat import EXTRACTION_REQUIREMENT, make_prompt, make_shards

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "scripts" / "sample_sources"
OUT = ROOT / "plugins" / "tasks" / "data"


def _blocks(path: Path) -> list[tuple[str, str]]:
    parts = re.split(r"^=== (.*)$", path.read_text(encoding="utf-8"), flags=re.M)
    return [(parts[i].strip(), parts[i + 1].strip()) for i in range(1, len(parts), 2)]


def _split(i: int) -> str:
    return "train" if i % 3 == 2 else "test"


def build_doc() -> list[dict[str, object]]:
    out = []
    for i, (header, body) in enumerate(_blocks(SRC / "doc_chat_articles.txt")):
        title, tags_text = (s.strip() for s in header.split("|", 1))
        tags = [t.strip() for t in tags_text.split(",")]
        out.append(
            {
                "id": f"doc-chat/sample-{i:03d}",
                "task": "doc-chat",
                "split": _split(i),
                "prompt": make_prompt(title, body),
                "reference": body,
                "metadata": {
                    "title": title,
                    "tags": tags,
                    "extraction_requirement": EXTRACTION_REQUIREMENT,
                    "shards": make_shards(title, body, tags),
                },
            }
        )
    return out


def build_abg() -> list[dict[str, object]]:
    out = []
    for i, (label, body) in enumerate(_blocks(SRC / "abg_coqa_stories.txt")):
        fields: dict[str, list[str]] = {}
        for line in body.splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                fields.setdefault(key.strip(), []).append(value.strip())
        ambiguous = label == "ambiguous"
        interpretations = [
            {"clarification": c.strip(), "answer": a.strip()}
            for c, a in (v.split("|", 1) for v in fields.get("I1", []) + fields.get("I2", []))
        ]
        history = [
            {"question": q.strip(), "answer": a.strip()} for q, a in (h.split("|", 1) for h in fields.get("HIST", []))
        ]
        answer = interpretations[0]["answer"] if ambiguous else fields["A"][0]
        ex = make_example_fields(
            story=fields["STORY"][0],
            question=fields["Q"][0],
            answer=answer,
            ambiguous=ambiguous,
            history=history,
            clarification_question=fields["CQ"][0] if ambiguous else None,
            interpretations=interpretations,
        )
        out.append({"id": f"abg-coqa/sample-{i:03d}", "task": "abg-coqa", "split": _split(i), **ex})
    return out


def main() -> None:
    for name, rows in (("doc_chat.jsonl", build_doc()), ("abg_coqa.jsonl", build_abg())):
        path = OUT / name
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{path.relative_to(ROOT)}: {len(rows)} examples")


if __name__ == "__main__":
    main()
