"""Every workflow the worker runs. Kept apart from ``workflows/__init__.py``, which stays empty: the sandbox
re-imports a workflow's package for each new workflow, so an import there costs every workflow start."""

from workflows.incident import IncidentCase
from workflows.ladder import EscalationLadder
from workflows.lcspr import LocalReview
from workflows.learning import LearningEvent
from workflows.yearly_report import YearlyReport

WORKFLOWS = [IncidentCase, EscalationLadder, LocalReview, LearningEvent, YearlyReport]
