"""Warm capacity in the stack file: a model's ``autoscaling.schedules`` (KEDA cron windows with a
higher replica floor, for business hours or a known peak)."""

from typing import Annotated

from pydantic import AfterValidator, Field

from llmstack_k8s.scaling.cron import cron_problem, timezone_problem

from .base import StackModel as _Model


def _cron(v: str) -> str:
    problem = cron_problem(v)
    if problem:
        raise ValueError(problem)
    return v


def _timezone(v: str) -> str:
    problem = timezone_problem(v)
    if problem:
        raise ValueError(problem)
    return v


Cron = Annotated[str, AfterValidator(_cron)]


class WarmScheduleConfig(_Model):
    """A window in which the model keeps at least `minReplicas` replicas, whatever the load."""

    start: Cron = Field(
        description=(
            "Cron expression (five fields) when the window opens; open it a cold start before the traffic, "
            "e.g. '30 7 * * 1-5'."
        )
    )
    end: Cron = Field(description="Cron expression when the window closes, e.g. '0 19 * * 1-5'.")
    min_replicas: int = Field(
        ge=1, le=64, description="Replicas kept during the window (at most autoscaling.maxReplicas)."
    )
    timezone: Annotated[str, AfterValidator(_timezone)] = Field(
        "UTC", description="IANA time zone of start and end (e.g. Europe/Berlin)."
    )

    def args(self) -> dict:
        return {"start": self.start, "end": self.end, "min_replicas": self.min_replicas, "timezone": self.timezone}
