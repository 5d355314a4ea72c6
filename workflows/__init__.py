"""Temporal workflows: deterministic, driven by each case's pinned arrangements version."""

from workflows.incident import IncidentCase
from workflows.ladder import EscalationLadder
from workflows.lcspr import LocalReview
from workflows.learning import LearningEvent

WORKFLOWS = [IncidentCase, EscalationLadder, LocalReview, LearningEvent]
