"""State by projection: deterministic folds of the log into queryable tables."""

from .balances import BalancesProjection
from .base import Context, Projection
from .nodes import NodesProjection
from .reputation import ReputationProjection
from .runner import ProjectionRunner, default_projections
from .tasks import TasksProjection

__all__ = ["BalancesProjection", "Context", "NodesProjection", "Projection", "ProjectionRunner",
           "ReputationProjection", "TasksProjection", "default_projections"]
