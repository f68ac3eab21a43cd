"""Records -> Diagnosis (pure), driven by the cause catalogue in ``schemas/causes.toml``.

``classify(record, related=()) -> Diagnosis | None`` is the per-event entry point;
``event_mode(record, related=())`` the mode of any decryption event, failed or not;
``load_catalogue(path)`` validates and compiles a catalogue; ``Classifier`` classifies with one.
"""

from pipeline.diagnosis.catalogue import Catalogue, Cause, load_catalogue
from pipeline.diagnosis.classify import Classifier, classifier_for, classify, event_mode
from pipeline.diagnosis.model import Diagnosis

__all__ = [
    "Catalogue",
    "Cause",
    "Classifier",
    "Diagnosis",
    "classifier_for",
    "classify",
    "event_mode",
    "load_catalogue",
]
