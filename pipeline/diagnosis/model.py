"""The Diagnosis: why one record (with its session's other records) is a decryption failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Diagnosis:
    cause: str
    category: str
    mode: str
    confidence: float
    evidence: tuple[dict[str, Any], ...]
    remediation: str
    references: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable form: exactly the dataclass fields, tuples as lists."""
        return {
            "cause": self.cause,
            "category": self.category,
            "mode": self.mode,
            "confidence": self.confidence,
            "evidence": [dict(e) for e in self.evidence],
            "remediation": self.remediation,
            "references": list(self.references),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        return cls(
            cause=data["cause"],
            category=data["category"],
            mode=data["mode"],
            confidence=float(data["confidence"]),
            evidence=tuple(dict(e) for e in data["evidence"]),
            remediation=data["remediation"],
            references=tuple(data["references"]),
        )
