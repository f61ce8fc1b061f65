"""The CloudEvents 1.0 envelope around every payload."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.base import Payload, UtcDatetime

P = TypeVar("P", bound=Payload)


class Envelope(BaseModel, Generic[P]):
    """A CloudEvents 1.0 event: context attributes plus a typed payload in ``data``.

    ``subject`` is the lead's identity key, also used as the Kafka record key, so all events
    of one lead stay in order on one partition. ``correlationid`` (a CloudEvents extension)
    follows a lead from ingest to notifier; ``synthetic`` marks canary traffic.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: Annotated[str, Field(min_length=1, max_length=200)]
    source: Annotated[str, Field(min_length=1, max_length=500)]
    type: Annotated[str, Field(min_length=1, max_length=200)]
    time: UtcDatetime
    subject: Annotated[str, Field(min_length=1, max_length=500)]
    dataschema: Annotated[str, Field(min_length=1, max_length=500)]
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: Annotated[str, Field(max_length=200)] | None = None
    synthetic: bool = False
    data: P


@cache
def envelope_of(payload: type[Any]) -> type[Envelope[Any]]:
    """``Envelope[payload]``, looked up once per payload class (pydantic's own lookup is costly per call)."""
    return Envelope[payload]  # type: ignore[valid-type]


def new_event(
    data: P,
    *,
    source: str,
    subject: str,
    id: str | None = None,
    time: datetime | None = None,
    correlationid: str | None = None,
    synthetic: bool = False,
    cause: Envelope[Any] | None = None,
) -> Envelope[P]:
    """Wrap ``data`` in an envelope whose type and dataschema follow from the payload class.

    ``cause``, the event this one follows from, passes on its correlation id and synthetic flag.
    """
    cls = type(data)
    event_id = id or str(uuid.uuid4())
    if cause is not None:
        correlationid = correlationid or cause.correlationid
        synthetic = synthetic or cause.synthetic
    return envelope_of(cls)(
        id=event_id,
        source=source,
        type=cls.ce_type(),
        time=time or datetime.now(UTC),
        subject=subject,
        dataschema=cls.dataschema(),
        correlationid=correlationid or event_id,
        synthetic=synthetic,
        data=data,
    )
