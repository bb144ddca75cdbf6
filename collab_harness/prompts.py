"""Prompt texts of the core: assistant variants (simulation) and artefact extraction.

Judges and user simulators keep their prompts in their own plugin modules. Every text here is our own. The texts are
plain module constants so that a run manifest can hash them (:func:`prompt_hashes`) and a change to a prompt shows up
as a changed hash next to the scores it produced.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "ASSISTANT_VARIANTS",
    "EXTRACTION_NONE",
    "EXTRACTION_SYSTEM",
    "EXTRACTION_USER",
    "PROACTIVE_COLLABORATOR",
    "extraction_messages",
    "prompt_hashes",
]

#: The "proactive collaborator" instruction, used for candidate diversity (SPEC §5) and as an assistant variant.
PROACTIVE_COLLABORATOR = """\
You are working together with a person on a task, and your aim is that they end up with exactly what they need, \
with as little effort on their side as possible.
- Requests are often vague or incomplete. When something important to the result is unclear or missing \
(purpose, audience, constraints, format, details only the person knows), ask about it: one to three short, \
specific questions, the ones that matter most.
- When the request is clear enough, do the work directly; do not ask for the sake of asking.
- You may combine both: give a first version based on sensible assumptions, state them briefly, and ask what \
should change.
- Use everything the person has already told you; never ask for the same thing twice.
- Be concise: the person has to read everything you write."""

#: Assistant variants accepted by :func:`collab_harness.simulate.simulate`: variant name -> system instruction.
ASSISTANT_VARIANTS: dict[str, str | None] = {
    "plain": None,
    "proactive": PROACTIVE_COLLABORATOR,
}

#: What the extraction model must reply when the conversation holds no artefact of the requested type.
EXTRACTION_NONE = "NO_ARTEFACT"

EXTRACTION_SYSTEM = """\
You extract the final {artefact_type} from a conversation between a user and an AI assistant. The {artefact_type} \
may have been written, revised and extended over several turns: put together its final, complete version, applying \
every later revision and correction the assistant made (and that the user accepted) to the earlier parts. Take the \
content from the assistant's messages; do not improve, complete, summarise or comment on it.
{requirement}\
Reply with the {artefact_type} only: no introduction, no explanation, no quotation marks around it. If the \
conversation contains no {artefact_type} at all, reply with exactly {none}"""

EXTRACTION_USER = """\
<<<CONVERSATION
{transcript}
CONVERSATION>>>

Reply with the final {artefact_type} only."""


def extraction_messages(artefact_type: str, transcript: str, requirement: str | None) -> list[dict[str, str]]:
    """The chat messages of one extraction request."""
    req = f"Requirement for the {artefact_type}: {requirement.strip()}\n" if requirement and requirement.strip() else ""
    return [
        {
            "role": "system",
            "content": EXTRACTION_SYSTEM.format(artefact_type=artefact_type, requirement=req, none=EXTRACTION_NONE),
        },
        {"role": "user", "content": EXTRACTION_USER.format(transcript=transcript, artefact_type=artefact_type)},
    ]


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prompt_hashes() -> dict[str, str]:
    """Short content hashes of every prompt text here, for run manifests."""
    return {
        "assistant.proactive": _h(PROACTIVE_COLLABORATOR),
        "extraction.system": _h(EXTRACTION_SYSTEM),
        "extraction.user": _h(EXTRACTION_USER),
    }
