"""The demo chatbot's answer generator: matches a question against a CV's skills.

Deterministic and offline (no model download). ``AnswerGenerator`` is the seam: a chatbot can
plug in a model-backed generator with the same ``answer(question)`` method.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Literal, Protocol

MatchType = Literal["full", "partial", "none"]

CV_SKILLS: dict[str, str] = {
    "python": "Python (8 years: services, data pipelines, tooling)",
    "aws": "AWS (Lambda, SQS, DynamoDB, CloudWatch, IAM)",
    "lambda": "AWS Lambda in production since 2018",
    "sqs": "SQS FIFO and standard queues, DLQ design",
    "dynamodb": "DynamoDB single-table design",
    "cdk": "AWS CDK in Python and TypeScript",
    "typescript": "TypeScript on Node and Cloudflare Workers",
    "cloudflare": "Cloudflare Workers, KV and Workers AI",
    "terraform": "Terraform modules for multi-account AWS",
    "postgresql": "PostgreSQL schema design and tuning",
    "docker": "Docker images and CI pipelines",
    "fastapi": "FastAPI services",
    "observability": "Metrics, structured logs and alarms",
}
# Skills people ask about that are not on the CV (so a question can be recognised as unmatched).
OTHER_SKILLS = {
    "rust", "golang", "go", "kubernetes", "java", "scala", "react", "angular", "swift", "kotlin",
    "azure", "gcp", "spark", "kafka", "haskell", "php", "ruby", "c++", "cobol", "salesforce", "sap",
}  # fmt: skip
ALIASES = {"postgres": "postgresql", "k8s": "kubernetes", "py": "python", "workers": "cloudflare", "ts": "typescript"}
_WORD = re.compile(r"[a-z0-9+#]+")


@dataclass(frozen=True)
class Answer:
    text: str
    match_type: MatchType
    match_score: float
    reasoning: str


class AnswerGenerator(Protocol):
    def answer(self, question: str) -> Answer: ...


class CvSkillMatcher:
    """Answers "does the candidate know X?" by looking the skills a question names up in the CV."""

    def __init__(self, cv_skills: dict[str, str] | None = None, other_skills: set[str] | None = None) -> None:
        self.cv_skills = cv_skills or CV_SKILLS
        self.known = set(self.cv_skills) | (other_skills if other_skills is not None else OTHER_SKILLS)

    def skills_in(self, question: str) -> list[str]:
        words = [ALIASES.get(w, w) for w in _WORD.findall(question.lower())]
        return list(dict.fromkeys(w for w in words if w in self.known))

    def answer(self, question: str) -> Answer:
        asked = self.skills_in(question)
        if not asked:
            return Answer(
                "I can only answer questions about the candidate's skills; try naming a technology.",
                "none",
                0.0,
                "no known skill named in the question",
            )
        found = [s for s in asked if s in self.cv_skills]
        missing = [s for s in asked if s not in self.cv_skills]
        score = round(100.0 * len(found) / len(asked), 1)
        match_type: MatchType = "full" if not missing else "partial" if found else "none"
        parts = [self.cv_skills[s] for s in found]
        if missing:
            parts.append(f"no experience listed with {', '.join(missing)}")
        reasoning = f"matched {len(found)} of {len(asked)} skills" + (f"; missing: {', '.join(missing)}" if missing else "")
        return Answer("; ".join(parts) + ".", match_type, score, reasoning)


class WithLatency:
    """Wraps a generator and takes ``seconds`` per answer, as a model call would (the seed's CV
    assistant answers in ~12 ms). The wait is a sleep: like network I/O, it leaves the CPU to
    other threads, so what the analytics cost shows up against a realistic answer time."""

    def __init__(self, generator: AnswerGenerator, seconds: float) -> None:
        self.generator = generator
        self.seconds = seconds

    def answer(self, question: str) -> Answer:
        deadline = time.perf_counter() + self.seconds
        answer = self.generator.answer(question)
        remaining = deadline - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)
        return answer


SAMPLE_QUESTIONS = [
    "Does the candidate know Python?",
    "Any experience with AWS Lambda and SQS?",
    "Has she used Rust?",
    "Can he write TypeScript for Cloudflare Workers?",
    "Is there Kubernetes experience?",
    "Does the candidate know Python and Go?",
    "What about DynamoDB?",
    "Any Java or Scala?",
    "Experience with Terraform and CDK?",
    "Has the candidate worked with Kafka?",
    "Does she know React?",
    "Postgres and FastAPI?",
    "What is the weather like?",
    "Docker and Kubernetes?",
    "Rust and Python?",
    "Any observability work, alarms and metrics?",
]
