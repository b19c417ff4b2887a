"""Dependencies of the routes, as ``Annotated`` aliases.

Every dependency is ``async def``: FastAPI runs a plain ``def`` one in a worker thread, a
thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.auth import Principal, authenticate
from api.body import score_request_body, topic_training_body, training_request_body
from api.errors import FORBIDDEN, RATE_LIMITED, ProblemError
from api.model_cache import ModelCache
from api.services import Services
from api.topic_request import TopicTrainingRequest
from api.training_batch import TrainingBatch
from shared.registry import ModelRegistry
from shared.schemas import ScoreRequest
from shared.topic_jobs import TopicJobs


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_registry(services: ServicesDep) -> ModelRegistry:
    return services.registry


async def get_models(services: ServicesDep) -> ModelCache:
    return services.models


async def get_jobs(request: Request) -> TopicJobs:
    jobs: TopicJobs = request.app.state.jobs
    return jobs


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
ModelCacheDep = Annotated[ModelCache, Depends(get_models)]
JobsDep = Annotated[TopicJobs, Depends(get_jobs)]
CallerDep = Annotated[Principal, Depends(authenticate)]


async def rate_limited(request: Request, principal: CallerDep) -> Principal:
    """The authenticated caller, after taking a token from its bucket (else 429).

    Every protected router has this as its dependency. (FastAPI walks a dependency's whole
    sub-tree each time it is named, cached or not, so the hot routes name it only there.)
    """
    take_token(request.app.state.services, principal)
    return principal


def take_token(services: Services, principal: Principal) -> None:
    """Take one token from the caller's bucket, or raise a 429 problem with ``Retry-After``."""
    wait = services.limiter.acquire(principal.identity)
    if wait > 0:
        seconds = services.limiter.retry_after(wait)
        raise ProblemError(
            429,
            f"rate limit of {services.settings.rate_limit_per_second:g} requests/s "
            f"(burst {services.settings.rate_limit_burst}) reached; retry in {seconds} s",
            type_=RATE_LIMITED,
            headers={"Retry-After": str(seconds)},
        )


AuthorizedCaller = Annotated[Principal, Depends(rate_limited)]


async def admin_caller(principal: AuthorizedCaller) -> Principal:
    """The caller, if its key is an admin key (``API_KEYS``); a read key gets 403."""
    if principal.role != "admin":
        raise ProblemError(
            403,
            "this key may only score and read (API_READ_KEYS): training, activation, deletion "
            "and shadow changes need an admin key (API_KEYS)",
            type_=FORBIDDEN,
        )
    return principal


AdminCaller = Annotated[Principal, Depends(admin_caller)]
TrainingBody = Annotated[TrainingBatch, Depends(training_request_body)]
ScoreBody = Annotated[ScoreRequest, Depends(score_request_body)]
TopicBody = Annotated[TopicTrainingRequest, Depends(topic_training_body)]
