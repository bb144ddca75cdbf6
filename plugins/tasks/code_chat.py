"""``code-chat``: BigCodeBench-style tasks — the user wants a Python function that uses libraries (SPEC §3).

Hub: ``bigcode/bigcodebench`` v0.1.2 (1,140 tasks; the hub's splits are version names), split 80/20 with a seeded
shuffle into train 912 / test 228. Offline: a sample of tasks written for this project, each with a real unittest
suite. Success = the extracted code passes the task's suite in the sandbox (:mod:`..metrics.sandbox`).
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from collab_harness import hookimpl
from collab_harness.types import Conversation, Example

from . import code_env
from ._common import DatasetTask, ExampleMetadata, StrictRecord

__all__ = ["CodeChatTask", "build_shards", "extract_code", "fenced_blocks", "with_code_prompt"]

HUB_VERSION = "v0.1.2"
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[^\s`]*)[^`]*$")


def _is_python(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every closed fenced block, read line by line as Markdown does: a block closes only
    at a line holding nothing but a fence at least as long as the opening one and indented less than four spaces,
    so a docstring that shows a fenced example (indented, or with an info string) stays inside its block."""
    lines = text.split("\n")
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        m = _OPEN_FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, j = m["fence"], i + 1
        body: list[str] = []
        while j < len(lines):
            s = lines[j]
            stripped = s.strip()
            if (len(s) - len(s.lstrip(" ")) < 4 and stripped and set(stripped) == {fence[0]}
                    and len(stripped) >= len(fence)):
                out.append((m["lang"].lower(), "\n".join(body)))
                break
            body.append(s)
            j += 1
        else:
            i += 1  # never closed: not a block (a stray fence in prose); look again from the next line
            continue
        i = j + 1
    return out


def extract_code(text: str) -> str:
    """The code in an assistant message: the text itself when it already is Python (a docstring holding a
    Markdown fence is not cut down to it), else the last fenced Python (or untagged) block, else the last block,
    else the whole text."""
    if _is_python(text):
        return text.strip("\n")
    blocks = fenced_blocks(text) or [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    python = [b for lang, b in blocks if lang in {"python", "py", "python3", ""}]
    if python:
        return python[-1].strip("\n")
    if blocks:
        return blocks[-1][1].strip("\n")
    return text.strip("\n")


def _import_lines(code_prompt: str) -> list[str]:
    return [ln for ln in code_prompt.splitlines() if re.match(r"\s*(import|from)\s+\S+", ln)]


def with_code_prompt(code: str, code_prompt: str) -> str:
    """Make ``code`` start with the task's imports: prepend those of ``code_prompt`` that ``code`` lacks, so a
    solution that forgot them (relying on the given prefix) still runs."""
    if not code_prompt or code.lstrip().startswith(code_prompt.strip()):
        return code
    have = {ln.strip() for ln in code.splitlines()}
    missing = [ln.strip() for ln in _import_lines(code_prompt) if ln.strip() not in have]
    return ("\n".join(missing) + "\n" + code) if missing else code


def _sentences(text: str) -> list[str]:
    """Split a request into sentences and bullet lines (code fences dropped: the signature becomes its own,
    late shard). A line ending in ':' is joined with the line after it ("should output with: <type>")."""
    text = _FENCE.sub("\n", text)
    lines = [ln.strip().lstrip("-*• ").strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not _BOILERPLATE.match(ln)]
    joined: list[str] = []
    for ln in lines:
        if joined and joined[-1].endswith(":"):
            joined[-1] = f"{joined[-1]} {ln}"
        else:
            joined.append(ln)
    out: list[str] = []
    for line in joined:
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z`])", line):
            s = s.strip()
            if len(s) > 2 and not s.endswith(":"):
                out.append(s)
    return out


_BOILERPLATE = re.compile(r"you should write self-contained code", re.IGNORECASE)


def _vague_opening(first: str) -> str:
    m = re.match(r"(please\s+)?(write|implement|define|create)\s+(a\s+)?(python\s+)?function\s+(that|to|which)\s+",
                 first.strip(), flags=re.IGNORECASE)
    link = "that" if m and m.group(5).lower() in {"that", "which"} else "to"
    core = first.strip()[m.end() if m else 0 :].rstrip(" .")
    words = core.split()
    if len(words) > 12:
        core = " ".join(words[:12]).rstrip(",;:") + " ..."
    else:
        core += "."
    return f"I need a Python function {link} {core[:1].lower() + core[1:]}"


def build_shards(prompt: str, code_prompt: str = "") -> list[str]:
    """Goal pieces for ``shard-user``: a vague one-line request, then each sentence / bullet of the request as its
    own shard (requirements, exceptions, return value), then the required signature."""
    sentences = _sentences(prompt)
    if not sentences:
        return [prompt.strip() or "I need a Python function."]
    shards = [_vague_opening(sentences[0]), *sentences]
    if code_prompt.strip():
        shards.append(f"The code must start with:\n{code_prompt.strip()}")
    return shards


class BigCodeBenchRecord(StrictRecord):
    """One record of ``bigcode/bigcodebench``, checked strictly (``libs`` is a Python-literal string on the hub)."""

    task_id: str
    instruct_prompt: str
    complete_prompt: str | None = None
    code_prompt: str = ""
    canonical_solution: str = ""
    test: str = ""
    entry_point: str = "task_func"
    libs: str | list[str] | None = None


class CodeMetadata(ExampleMetadata):
    code_prompt: str | None = None
    test: str | None = None
    entry_point: str | None = None
    libs: list[str] | None = None


class CodeChatTask(DatasetTask):
    """Write a self-contained Python function that uses libraries, judged by a hidden unittest suite."""

    name: ClassVar[str] = "code-chat"
    description: ClassVar[str] = "BigCodeBench-style Python function writing, judged by unit tests in a sandbox"
    task_desc: ClassVar[str] = "code generation"
    artefact_type: ClassVar[str | None] = "code"
    default_metrics: ClassVar[Mapping[str, float]] = {"pass_rate": 1.0, "interactivity": 1.0, "token_amount": 0.0}
    penalty_lambda: ClassVar[float] = 5e-4
    #: The success check runs code: it goes to the "sandbox" executor.
    check_success_executor: ClassVar[str] = "sandbox"

    hub_id: ClassVar[str] = "bigcode/bigcodebench"
    hub_sizes: ClassVar[Mapping[str, int | None]] = {"train": 912, "test": 228}
    sample_file: ClassVar[str] = "code_chat.jsonl"
    HubRecord: ClassVar[type[BaseModel] | None] = BigCodeBenchRecord
    Metadata: ClassVar[type[BaseModel]] = CodeMetadata
    #: Share of the hub version that goes to test (SPEC §3: 80/20).
    test_fraction: ClassVar[float] = 0.2

    def hub_partition(self, raw: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[Mapping[str, Any]]]:
        """The hub's split named after the version, shuffled by the task seed and cut 80/20 (912/228 of 1,140)."""
        if HUB_VERSION in raw:
            records = list(raw[HUB_VERSION])
        elif len(raw) == 1:
            records = list(next(iter(raw.values())))
        else:
            raise KeyError(f"code-chat: hub splits {sorted(raw)} lack {HUB_VERSION!r}")
        # Sort by id first so the partition does not depend on the hub's row order.
        records.sort(key=lambda r: _task_number(str(r.get("task_id", ""))))
        order = list(range(len(records)))
        random.Random(int(getattr(self.options, "seed", 0))).shuffle(order)
        n_test = round(len(records) * self.test_fraction)
        test_idx, train_idx = sorted(order[:n_test]), sorted(order[n_test:])
        return {"train": [records[i] for i in train_idx], "test": [records[i] for i in test_idx]}

    def from_hub_record(self, record: Mapping[str, Any], index: int) -> Example:
        code_prompt = str(record.get("code_prompt", ""))
        prompt = str(record.get("instruct_prompt") or record.get("complete_prompt") or "")
        libs = record.get("libs", [])
        if isinstance(libs, str):  # the hub stores libs as a Python-literal string
            libs = re.findall(r"'([^']+)'", libs)
        return Example(
            id=str(record.get("task_id") or f"code-chat/{index}"),
            task=self.name,
            prompt=prompt,
            reference=code_prompt + str(record.get("canonical_solution", "")),
            metadata={
                "code_prompt": code_prompt,
                "test": str(record.get("test", "")),
                "entry_point": str(record.get("entry_point", "task_func")),
                "libs": list(libs),
                "extraction_requirement": f"The code must start with:\n{code_prompt}",
                "shards": build_shards(prompt, code_prompt),
            },
        )

    def required_modules(self, example: Example) -> list[str]:
        """Top-level modules the example's tests or reference import (the preflight's and ``pass_rate``'s view of
        what the environment must provide)."""
        return code_env.required_modules(example)

    def missing_modules(self, example: Example) -> list[str]:
        """The modules of :meth:`required_modules` this environment lacks."""
        return code_env.missing_modules(example)

    def install_names(self, modules: Sequence[str]) -> list[str]:
        """PyPI names of ``modules`` (``sklearn`` -> ``scikit-learn``), for the doctor's install hint."""
        return [code_env.pip_name(m) for m in modules]

    def goal_shards(self, example: Example) -> list[str]:
        shards = example.metadata.get("shards")
        if shards:
            return [str(s) for s in shards]
        return build_shards(example.prompt, str(example.metadata.get("code_prompt", "")))

    def brief(self, example: Example) -> str:
        """A person playing the user needs the function to write and its signature (the tests stay hidden)."""
        sig = str(example.metadata.get("code_prompt") or "").strip()
        return ("Your task: get the assistant to write this function.\n\n" + example.prompt
                + (f"\n\nIt must start with:\n{sig}" if sig else ""))

    def extract_rule(self, example: Example, conversation: Conversation) -> str | None:
        """The last fenced code block of the assistant's messages, completed with the task's imports."""
        for msg in reversed(conversation.by_role("assistant")):
            if "```" in msg.content:
                return with_code_prompt(extract_code(msg.content), str(example.metadata.get("code_prompt", "")))
        return None

    def check_success(self, example: Example, answer: str) -> bool | None:
        job = _success_job(example, answer)
        return None if job is None else passes(*job)

    async def acheck_success(self, example: Example, answer: str) -> bool | None:
        """:meth:`check_success` with its test run on the scoring executor (a local pool, or a Ray worker)."""
        from collab_harness import executors

        job = _success_job(example, answer)
        if job is None:
            return None
        return (await executors.run_scoring(self.check_success_executor, passes, *job)).value


def _success_job(example: Example, answer: str) -> tuple[str, str, str] | None:
    """(code, tests, entry point) of a success check, or None when the example has no tests."""
    tests = example.metadata.get("test")
    if not tests:
        return None
    code = with_code_prompt(extract_code(answer), str(example.metadata.get("code_prompt", "")))
    return code, str(tests), str(example.metadata.get("entry_point") or "task_func")


def passes(code: str, tests: str, entry_point: str) -> bool:
    """Whether ``code`` passes ``tests`` in the sandbox, with its default limits (module-level: it may run on a
    Ray worker)."""
    from collab_harness_plugins.metrics.sandbox import run_tests

    return run_tests(code, tests, entry_point=entry_point).passed


def _task_number(task_id: str) -> tuple[int, str]:
    m = re.search(r"(\d+)$", task_id)
    return (int(m.group(1)) if m else -1, task_id)


@hookimpl
def register_tasks(register: Any) -> None:
    register(CodeChatTask)
