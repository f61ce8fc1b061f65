"""``leadpipe scoring rescore --model V`` and ``leadpipe scoring model``: switch the scoring model;
``leadpipe scoring split --lead-id X --capture-id Y``: undo a wrong merge.

``rescore`` records V as the active model (running workers pick it up with their next batch),
then re-scores every known lead under it, publishing ``lead.scored`` for each lead whose
score, grade or profile changed. ``--dry-run`` changes nothing: it reports how many leads
would change and the grade transitions. Settings come from the environment (as the worker's:
``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``, ``SCORING_REDIS_PREFIX``, ...) or the flags.

``split`` moves capture Y (and the captures sharing its strong identifiers) out of lead X into
a lead of its own and publishes a ``lead.scored`` for each of the two leads (trigger
``leadpipe.scoring.split``, cause id ``split:X:Y``).

Exit codes: 0 done, 2 bad input (unknown model version, missing setting, no such lead or
capture), 3 Redis or the broker unreachable (or Redis being rebuilt), 4 the run was interrupted
by a conflicting model switch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT, EXIT_UNREACHABLE, EXIT_CONFLICT = 2, 3, 4


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scoring = sub.add_parser("scoring", help="scoring model versions and re-scoring")
    ssub = scoring.add_subparsers(dest="scoring_command", required=True)
    rescore = ssub.add_parser("rescore", help="make a model version active and re-score every known lead")
    rescore.add_argument("--model", required=True, help="model version, e.g. fit-2026.2 (a file in the models dir)")
    rescore.add_argument("--dry-run", action="store_true", help="report what would change; publish and write nothing")
    rescore.add_argument("--batch-size", type=int, default=500, help="leads read, scored and written together")
    rescore.add_argument("--run-id", default=None, help="re-use a run id to republish the same event ids")
    rescore.add_argument("--json", action="store_true", help="print the report as JSON")
    rescore.add_argument("--no-progress", action="store_true", help="no progress bar")
    _connection_args(rescore)
    rescore.set_defaults(func=_rescore)
    split = ssub.add_parser("split", help="undo a wrong merge: move a capture out of a lead into a lead of its own")
    split.add_argument("--lead-id", required=True, help="the lead the capture was merged into (ld_...)")
    split.add_argument("--capture-id", required=True, help="the capture_id of a capture that is another person")
    _connection_args(split)
    split.set_defaults(func=_split)
    model = ssub.add_parser("model", help="show the active model version and the versions available")
    _connection_args(model)
    model.set_defaults(func=_model)
    # privacy hook (retention, issue #15 item 4): services/scoring/retention.py
    sweep = ssub.add_parser("sweep", help="retention: erase unconverted leads kept longer than the limit")
    sweep.add_argument(
        "--unconverted-days",
        type=float,
        default=None,
        help="limit for leads that never bought (default: $LEADPIPE_RETENTION_UNCONVERTED_DAYS or 730)",
    )
    sweep.add_argument("--logs-dir", type=Path, default=None, help="also delete log files older than --log-days here")
    sweep.add_argument("--log-days", type=float, default=None, help="default: $LEADPIPE_RETENTION_LOG_DAYS or 30")
    sweep.add_argument("--metrics-file", type=Path, default=None, help="write the purge counters here (textfile)")
    sweep.add_argument("--dry-run", action="store_true", help="list what has expired, erase nothing")
    sweep.add_argument("--json", action="store_true", help="print the report as JSON")
    _connection_args(sweep)
    sweep.set_defaults(func=lambda a: _run(a, _sweep_async))  # fmt: skip


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--redis-url", default=None, help="default: $REDIS_URL")
    p.add_argument("--prefix", default=None, help="Redis key prefix (default: $SCORING_REDIS_PREFIX or scoring:)")
    p.add_argument("--output-topic", default=None, help="default: $SCORING_OUTPUT_TOPIC or lead.scored.v1")
    p.add_argument("--models-dir", type=Path, default=None, help="default: the models shipped with scoring")
    p.add_argument("--state-topic", default=None, help="default: $SCORING_STATE_TOPIC or scoring.state.v1")


class CliError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _settings(args: argparse.Namespace, *, needs_kafka: bool) -> Any:
    from pydantic import ValidationError

    from services.scoring.config import ScoringSettings

    overrides: dict[str, Any] = {
        "kafka_bootstrap_servers": args.bootstrap,
        "redis_url": args.redis_url,
        "scoring_redis_prefix": args.prefix,
        "scoring_output_topic": args.output_topic,
        "scoring_models_dir": args.models_dir,
        "scoring_state_topic": args.state_topic,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not needs_kafka:
        overrides.setdefault("kafka_bootstrap_servers", "unused:0")
    try:
        return ScoringSettings(**overrides)
    except ValidationError as exc:
        missing = [str(e["loc"][0]).upper() for e in exc.errors() if e["type"] == "missing"]
        if missing:
            flags = {"KAFKA_BOOTSTRAP_SERVERS": "--bootstrap", "REDIS_URL": "--redis-url"}
            hint = ", ".join(f"{m} (or {flags.get(m, '')})" for m in missing)
            raise CliError(f"missing setting {hint}", EXIT_BAD_INPUT) from exc
        raise CliError(f"bad setting: {exc}", EXIT_BAD_INPUT) from exc


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        return int(asyncio.run(body(args)))
    except CliError as exc:
        print(f"leadpipe: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("leadpipe: interrupted; run again (with the same --run-id) to finish", file=sys.stderr)
        return 130


async def _connect_redis(settings: Any) -> Any:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=30)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()  # type: ignore[attr-defined]
        raise CliError(f"Redis at {settings.redis_url} unreachable: {exc}", EXIT_UNREACHABLE) from exc
    return redis


def _load_model(settings: Any, version: str) -> Any:
    from services.scoring.adapters.reference_files import ModelCatalog
    from services.scoring.domain.errors import ModelError

    try:
        return ModelCatalog(settings.scoring_models_dir).get(version)
    except ModelError as exc:
        raise CliError(f"--model: {exc}", EXIT_BAD_INPUT) from exc


def _rescore(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        print("leadpipe: error: --batch-size: must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _run(args, _rescore_async)


async def _rescore_async(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError
    from redis.exceptions import RedisError
    from tqdm import tqdm

    from leadpipe.runtime.kafka import make_producer
    from schemas.codec import encode
    from services.scoring.adapters.redis_store import RedisLeadStore
    from services.scoring.adapters.reference_files import load_reference
    from services.scoring.adapters.state_log import StateLog
    from services.scoring.rescore import Report, RescoreError, cause_id, rescore_all

    settings = _settings(args, needs_kafka=not args.dry_run)
    model = _load_model(settings, args.model)
    ref = load_reference(settings.scoring_data_dir, settings.scoring_served_area_path)
    redis = await _connect_redis(settings)
    store = RedisLeadStore(redis, settings.scoring_redis_prefix)
    producer = None
    run_id = args.run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    cause = cause_id(model.version, run_id)
    report = Report(model.version, None, args.dry_run)
    try:
        if not args.dry_run:
            producer = make_producer(settings, linger_ms=5, max_batch_size=256 * 1024)
            try:
                await producer.start()
            except KafkaError as exc:
                producer = None
                raise CliError(
                    f"Kafka at {settings.kafka_bootstrap_servers} unreachable: {exc}", EXIT_UNREACHABLE
                ) from exc
        state_log = StateLog(producer, settings.scoring_state_topic)
        if args.dry_run:
            report.previous_version = await store.active_model()
        else:
            # The state topic first: a Redis rebuilt from it must come back with this model.
            await state_log.append([], model_version=model.version)
            report.previous_version = await store.set_active_model(model.version)
        total = await store.count_leads()
        topic = settings.scoring_output_topic

        async def publish(outputs: list[Any]) -> None:
            limit = settings.kafka_max_record_bytes
            acks = [await _send(producer, topic, encode(o, max_bytes=limit)) for o in outputs]
            await asyncio.gather(*acks)

        bar = tqdm(total=total, unit="lead", disable=args.no_progress, desc=f"rescore {model.version}", file=sys.stderr)
        try:
            await rescore_all(
                store, model, ref, now=datetime.now(UTC), cause=cause, publish=publish, report=report,
                chunk_size=args.batch_size, progress=bar.update, record=None if args.dry_run else state_log.append,
            )  # fmt: skip
        finally:
            bar.close()
    except RescoreError as exc:
        raise CliError(str(exc), EXIT_CONFLICT) from exc
    except (RedisError, KafkaError, OSError) as exc:
        raise CliError(
            f"lost Redis or Kafka after {report.leads} lead(s): {exc!r}; run again with --run-id {run_id} "
            "(leads already done publish nothing new)",
            EXIT_UNREACHABLE,
        ) from exc
    finally:
        if producer is not None:
            await producer.stop()
        await redis.aclose()
    _print_report(report, cause, args.json)
    return 0


async def _send(producer: Any, topic: str, record: Any) -> Any:
    return await producer.send(topic, record.value, key=record.key, headers=record.headers)


def _print_report(report: Any, cause: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict() | {"cause_id": cause}, indent=2))
        return
    verb = "would publish" if report.dry_run else "published"
    switched = (
        f"active model: {report.previous_version or '(worker default)'} (unchanged; dry run)"
        if report.dry_run
        else f"active model: {report.previous_version or '(worker default)'} -> {report.model_version}"
    )
    print(switched)
    print(
        f"{report.leads} lead(s) under {report.model_version}: {report.changed} changed "
        f"({report.grade_changes} changed grade), {report.skipped} skipped (not captured yet or canary); "
        f"{verb} {report.changed if report.dry_run else report.published} lead.scored"
        + (f"; {report.conflicts} chunk(s) re-read after a worker changed them" if report.conflicts else "")
    )
    print(f"cause id: {cause}")
    print(report.table())


def _split(args: argparse.Namespace) -> int:
    return _run(args, _split_async)


async def _split_async(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError
    from redis.exceptions import RedisError, WatchError

    from leadpipe.runtime.kafka import make_producer
    from leadpipe.runtime.stream import BatchConflict
    from schemas.codec import encode
    from services.scoring.adapters.capture_log import find_captures
    from services.scoring.adapters.redis_store import RedisLeadStore, load_state
    from services.scoring.adapters.reference_files import load_model, load_reference
    from services.scoring.adapters.state_log import StateLog
    from services.scoring.domain.errors import SplitError
    from services.scoring.split import captures_complete, split_cause, split_lead, with_captures

    settings = _settings(args, needs_kafka=True)
    ref = load_reference(settings.scoring_data_dir, settings.scoring_served_area_path)
    redis = await _connect_redis(settings)
    store = RedisLeadStore(redis, settings.scoring_redis_prefix)
    producer = make_producer(settings, linger_ms=5)
    found: dict[str, Any] = {}
    try:
        try:
            await producer.start()
        except KafkaError as exc:
            raise CliError(f"Kafka at {settings.kafka_bootstrap_servers} unreachable: {exc}", EXIT_UNREACHABLE) from exc
        while True:
            raw = await redis.get(store.lead_key(args.lead_id))
            if raw is None:
                raise CliError(f"--lead-id: no lead {args.lead_id!r} (never seen, or merged into another lead)",
                               EXIT_BAD_INPUT)  # fmt: skip
            stored = load_state(raw)
            if stored.captured and not captures_complete(stored):
                # Read before the watched read: the topic scan can take a while.
                seen = set(stored.seen) - {c.event_id for c in stored.captures}
                found = await find_captures(settings, settings.scoring_input_topics.split(",")[0].strip(), seen)
            snap = await store.read(stored.identifiers)
            try:
                state = snap.leads.get(args.lead_id)
                if state is not None and state.captured and not captures_complete(state):
                    snap.leads[args.lead_id] = with_captures(state, found)
                if not snap.built:
                    raise CliError("scoring state is being rebuilt from the state topic; run again shortly",
                                   EXIT_UNREACHABLE)  # fmt: skip
                model = (
                    _load_model(settings, snap.model_version)
                    if snap.model_version
                    else load_model(settings.scoring_model_path)
                )
                done = split_lead(snap, args.lead_id, args.capture_id, model, ref, datetime.now(UTC))
                limit, topic = settings.kafka_max_record_bytes, settings.scoring_output_topic
                acks = [await _send(producer, topic, encode(o, max_bytes=limit)) for o in done.outputs]
                await asyncio.gather(*acks)
                await StateLog(producer, settings.scoring_state_topic).append([done.kept, done.split_off])
                await store.write(snap)
                break
            except (WatchError, BatchConflict):
                continue  # a worker changed one of these leads meanwhile: read them again
            except SplitError as exc:
                raise CliError(str(exc).replace("lead_id: ", "--lead-id: ").replace("capture_id: ", "--capture-id: "),
                               EXIT_BAD_INPUT) from exc  # fmt: skip
            finally:
                await store.abandon()
    except (RedisError, KafkaError, OSError) as exc:
        raise CliError(f"lost Redis or Kafka: {exc!r}; run the split again (it publishes the same ids)",
                       EXIT_UNREACHABLE) from exc  # fmt: skip
    finally:
        await producer.stop()
        await redis.aclose()
    print(f"lead {args.lead_id}: {len(done.moved_captures)} capture(s) ({', '.join(done.moved_captures)}) "
          f"split off into lead {done.split_off.lead_id}")  # fmt: skip
    print(f"published 2 lead.scored ({done.kept.lead_id}, {done.split_off.lead_id}); "
          f"cause id: {split_cause(args.lead_id, args.capture_id)}")  # fmt: skip
    return 0


def _model(args: argparse.Namespace) -> int:
    return _run(args, _model_async)


async def _model_async(args: argparse.Namespace) -> int:
    from services.scoring.adapters.redis_store import RedisLeadStore
    from services.scoring.adapters.reference_files import ModelCatalog

    settings = _settings(args, needs_kafka=False)
    redis = await _connect_redis(settings)
    try:
        active = await RedisLeadStore(redis, settings.scoring_redis_prefix).active_model()
    finally:
        await redis.aclose()
    print(f"active: {active or '(none recorded: each worker uses SCORING_MODEL_PATH)'}")
    print("available: " + ", ".join(ModelCatalog(settings.scoring_models_dir).versions()))
    return 0


async def _sweep_async(args: argparse.Namespace) -> int:
    import os

    from aiokafka.errors import KafkaError
    from prometheus_client import CollectorRegistry

    from leadpipe.ops.privacy import forget_answered_requests
    from leadpipe.ops.settings import OpsSettings
    from leadpipe.runtime.kafka import make_producer, send_record
    from schemas.codec import encode
    from schemas.envelope import new_event
    from services.scoring.adapters.redis_store import RedisLeadStore
    from services.scoring.domain.retention import DEFAULT_UNCONVERTED_DAYS, RetentionPolicy
    from services.scoring.retention import DEFAULT_LOG_DAYS, SweepMetrics, sweep, write_metrics

    def limit(flag: float | None, env: str, default: float) -> float:
        if flag is not None:
            return flag
        try:
            return float(os.environ.get(env, default))
        except ValueError as exc:
            raise CliError(f"{env}: not a number of days: {os.environ[env]!r}", EXIT_BAD_INPUT) from exc

    try:
        policy = RetentionPolicy(limit(args.unconverted_days, "LEADPIPE_RETENTION_UNCONVERTED_DAYS",
                                       DEFAULT_UNCONVERTED_DAYS))  # fmt: skip
    except ValueError as exc:
        raise CliError(f"--unconverted-days: {exc}", EXIT_BAD_INPUT) from exc
    log_days = limit(args.log_days, "LEADPIPE_RETENTION_LOG_DAYS", DEFAULT_LOG_DAYS)
    settings = _settings(args, needs_kafka=not args.dry_run)
    redis = await _connect_redis(settings)
    producer = None if args.dry_run else make_producer(settings)
    metrics = SweepMetrics(CollectorRegistry())
    try:
        if producer is not None:
            await producer.start()

        async def publish(requests: list[Any]) -> None:
            assert producer is not None
            for req in requests:
                event = new_event(req, source="/leadpipe/retention", subject=req.subject_hash)
                await send_record(producer, req.topic(), encode(event))

        ops = OpsSettings(kafka_bootstrap_servers=settings.kafka_bootstrap_servers)
        report = await sweep(
            leads=RedisLeadStore(redis, settings.scoring_redis_prefix).all_leads(),
            policy=policy, secret=settings.leadpipe_privacy_secret, publish=publish,
            forget_answered=lambda: forget_answered_requests(ops), metrics=metrics,
            logs_dir=args.logs_dir, log_days=log_days, dry_run=args.dry_run,
        )  # fmt: skip
    except KafkaError as exc:
        raise CliError(f"broker at {settings.kafka_bootstrap_servers} unreachable: {exc}", EXIT_UNREACHABLE) from exc
    finally:
        if producer is not None:
            await producer.stop()
        await redis.aclose()
    if args.metrics_file is not None:
        write_metrics(metrics, args.metrics_file)
    doc = {"leads_seen": report.leads_seen, "expired": report.expired, "requests": report.requests,
           "request_keys_destroyed": report.request_keys_destroyed, "log_files_deleted": report.log_files_deleted,
           "dry_run": args.dry_run, "unconverted_days": policy.unconverted_lead_days}  # fmt: skip
    if args.json:
        print(json.dumps(doc))
    else:
        verb = "would erase" if args.dry_run else "erasure requested for"
        print(f"{report.leads_seen} leads seen; {verb} {len(report.expired)} unconverted lead(s) older than "
              f"{policy.unconverted_lead_days:g} days; {report.request_keys_destroyed} answered request key(s) "
              f"destroyed; {report.log_files_deleted} log file(s) deleted")  # fmt: skip
    return 0
