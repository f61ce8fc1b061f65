"""Personal fields and crypto-shredding: personal data on the log is encrypted under a key per person.

A payload field annotated with ``PERSONAL`` (``Annotated[str | None, PERSONAL]``) holds personal
data. When the codec encodes with a ``Keyring``, every string inside such a field (a string, the
strings of a tuple or a dict, recursively) becomes a token ``pii1:<kid>:<version>:<base64url>``:
AES-256-GCM under the data key of the event's person (``person_ref``), with the key id and version
as associated data. The JSON keeps its shape (a string stays a string). Decoding opens every token
while the key exists; once the person is erased their key is destroyed in the key store and every
record of theirs, wherever it was copied (topics, dead-letter topics, the ingest spool), stays
unreadable: ``SubjectErased``. Records written before encryption (plain strings) decode as before.

Whose key (``person_ref``): the normalised email the event carries, else its phone (E.164 when it
parses), else the show+badge or external id, else ``lead:<lead id>`` for events that only name a
lead, and ``request:<request id>`` for an erasure request (its own key, destroyed once every
service has answered). The key id is ``HMAC-SHA256(privacy secret, "pkey|" + ref)``, truncated to
128 bits: it names no one to a reader without the secret.

Exceptions::

    DecodeError (schemas.errors)
    ├── SubjectErased    the record's person was erased: its data key is gone (skip the record)
    └── KeyringMissing   the record holds encrypted fields and the reader has no keyring
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, get_args, get_origin

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel

from schemas.errors import DecodeError
from schemas.identity import normalise_badge, normalise_email, normalise_phone

TOKEN_PREFIX = "pii1:"
_TOKEN = re.compile(r"^pii1:([0-9a-f]{32}):([0-9a-f]{8}):([A-Za-z0-9_-]+)$")
#: The kid and version of every token inside a raw record value (JSON or a sealed state value).
_TOKEN_IN = re.compile(rb"pii1:([0-9a-f]{32}):([0-9a-f]{8}):")
_NONCE = 12


class Personal:
    """Marker: the annotated field holds personal data (encrypted on the log under the person's key)."""

    _instance: Personal | None = None

    def __new__(cls) -> Personal:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "PERSONAL"


PERSONAL = Personal()


class SubjectErased(DecodeError):
    """The record belongs to a person who was erased: their data key no longer exists.

    Consumers skip such a record (it is neither invalid nor retried) and never dead-letter it."""

    def __init__(self, kid: str):
        super().__init__(
            f"data: personal fields are encrypted under key {kid}, which was destroyed (person erased)",
            field="data",
            problem="person erased",
        )
        self.kid = kid


class KeyringMissing(DecodeError):
    """A record holds encrypted personal fields and the reader was given no keyring."""


class KeyStore(Protocol):
    """Where data keys live (a Redis database of their own in the pipeline; any store with
    atomic create-if-absent fits). Keys are 32 random bytes with a random version id."""

    def get(self, kid: str) -> tuple[str, bytes] | None:
        """The key's ``(version, key)`` or None when it never existed or was destroyed."""
        ...

    def get_or_create(self, kid: str) -> tuple[str, bytes]:
        """The key, created atomically when absent (two processes racing get the same key)."""
        ...

    def destroy(self, kids: Iterable[str]) -> int:
        """Deletes the keys for good; returns how many existed."""
        ...


class AsyncKeyStore(Protocol):
    """The same store read without blocking the event loop: what ``Keyring.prefetch`` and
    ``Keyring.prepare`` fill the cache from, before the synchronous codec runs."""

    async def fetch(self, kids: Sequence[str], create: Sequence[str] = ()) -> dict[str, tuple[str, bytes]]:
        """In one round trip: the keys of ``kids`` that exist (absent ones left out) and the keys
        of ``create``, each created atomically when absent (as ``KeyStore.get_or_create``)."""
        ...


def new_key() -> tuple[str, bytes]:
    return os.urandom(4).hex(), AESGCM.generate_key(bit_length=256)


class Keyring:
    """Seals and opens personal strings with per-person keys from a ``KeyStore``.

    Keys are cached in the process for ``cache_ttl_s``; ``forget`` clears the cache (the codec
    calls it on every erasure request it decodes, so an erased key is not used from the cache).
    A key destroyed by another process is therefore used here at most ``cache_ttl_s`` longer.
    The cache holds the keys of the last ``cache_ttl_s`` only, and at most ``cache_max`` of them:
    expired keys are dropped as new ones come in (it grew by one key per person for as long as
    the process ran, each a live cipher object the garbage collector walked).

    With an ``AsyncKeyStore`` (``prefetch_store``), async callers fill the cache ahead of the
    codec in one round trip (``prefetch`` for the tokens of records about to be decoded,
    ``prepare`` for the refs about to be sealed); whatever is not cached then is asked for
    synchronously as before: correctness never depends on a prefetch."""

    def __init__(
        self,
        store: KeyStore,
        secret: str,
        *,
        cache_ttl_s: float = 30.0,
        cache_max: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        prefetch_store: AsyncKeyStore | None = None,
    ):
        self.store = store
        self.prefetch_store = prefetch_store
        #: Bumped by every ``forget``: keys fetched across one are not cached (they may be erased).
        self._epoch = 0
        self._secret = secret.encode()
        self.cache_ttl_s = cache_ttl_s
        self.cache_max = cache_max
        self.clock = clock
        #: kid -> (expires, version, cipher), in the order of ``expires`` (see ``_put``).
        self._cache: OrderedDict[str, tuple[float, str, AESGCM]] = OrderedDict()
        self._lock = threading.Lock()
        self._kids: dict[str, str] = {}

    def kid(self, ref: str) -> str:
        kid = self._kids.get(ref)
        if kid is None:
            if len(self._kids) > 10_000:  # a bound, not an LRU: recomputing is cheap
                self._kids.clear()
            kid = self._kids[ref] = hmac.new(self._secret, f"pkey|{ref}".encode(), hashlib.sha256).hexdigest()[:32]
        return kid

    def _cached(self, kid: str) -> tuple[str, AESGCM] | None:
        with self._lock:
            hit = self._cache.get(kid)
            if hit and hit[0] > self.clock():
                return hit[1], hit[2]
            return None

    def _remember(self, kid: str, version: str, key: bytes) -> tuple[str, AESGCM]:
        aead = AESGCM(key)  # built once per key: its set-up costs more than sealing a field
        with self._lock:
            now = self.clock()
            self._put(kid, (now + self.cache_ttl_s, version, aead), now)
        return version, aead

    def _put(self, kid: str, entry: tuple[float, str, AESGCM], now: float) -> None:
        """Caches ``entry`` last (every entry gets ``now + cache_ttl_s``, and ``now`` does not go
        back, so the dict stays in expiry order), then drops expired entries from the front and
        the oldest beyond ``cache_max``. Called with the lock held."""
        cache = self._cache
        cache[kid] = entry
        cache.move_to_end(kid)  # a replaced key would keep its old place
        while cache:
            oldest = next(iter(cache))  # O(1) in an OrderedDict (a dict scans past deleted slots)
            if cache[oldest][0] > now and len(cache) <= self.cache_max:
                break
            del cache[oldest]

    def forget(self, kids: Iterable[str] | None = None) -> None:
        """Drops cached keys (all of them when ``kids`` is None)."""
        with self._lock:
            self._epoch += 1
            if kids is None:
                self._cache.clear()
            else:
                for kid in kids:
                    self._cache.pop(kid, None)

    # -- filling the cache without blocking (async callers, before the synchronous codec) ----------
    async def prefetch(self, values: Iterable[bytes | None]) -> int:
        """Caches, in one round trip, the keys of the tokens in these raw record values that are
        not cached (or cached under another version). A key missing from the store stays
        uncached: decoding then says ``SubjectErased`` as it would have. Returns how many keys
        were asked for (0: no round trip)."""
        wanted: dict[str, set[str]] = {}
        for value in values:
            if value and TOKEN_PREFIX.encode() in value:
                for kid, version in _TOKEN_IN.findall(value):
                    wanted.setdefault(kid.decode(), set()).add(version.decode())
        kids = [kid for kid, versions in wanted.items() if (hit := self._cached(kid)) is None or hit[0] not in versions]
        await self._fill(kids, ())
        return len(kids)

    async def prepare(self, refs: Iterable[str], *, existing: Iterable[str] = ()) -> int:
        """Caches, in one round trip, the keys about to seal: those of ``refs`` created when absent
        (as ``seal`` would), those of ``existing`` only if they exist (never created). Returns how
        many keys were asked for (0: no round trip)."""
        create = [kid for kid in dict.fromkeys(self.kid(r) for r in refs) if self._cached(kid) is None]
        kids = [kid for kid in dict.fromkeys(self.kid(r) for r in existing) if self._cached(kid) is None]
        kids = [kid for kid in kids if kid not in create]
        await self._fill(kids, create)
        return len(kids) + len(create)

    async def _fill(self, kids: Sequence[str], create: Sequence[str]) -> None:
        if self.prefetch_store is None or not (kids or create):
            return
        with self._lock:
            epoch = self._epoch
        found = await self.prefetch_store.fetch(kids, create)
        aeads = {kid: (version, AESGCM(key)) for kid, (version, key) in found.items()}
        with self._lock:
            if self._epoch != epoch:
                return  # an erasure came in while we waited: these keys may be destroyed already
            now = self.clock()
            for kid, (version, aead) in aeads.items():
                self._put(kid, (now + self.cache_ttl_s, version, aead), now)

    def seal(self, ref: str, plaintext: str) -> str:
        kid = self.kid(ref)
        found = self._cached(kid)
        if found is None:
            found = self._remember(kid, *self.store.get_or_create(kid))
        version, aead = found
        nonce = os.urandom(_NONCE)
        sealed = aead.encrypt(nonce, plaintext.encode(), f"{kid}:{version}".encode())
        return f"{TOKEN_PREFIX}{kid}:{version}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, token: str) -> str:
        """The plaintext of a token; ``SubjectErased`` when its key is gone (or was replaced by a
        new key after an erasure); ``DecodeError`` when the token is malformed or tampered with."""
        m = _TOKEN.match(token)
        if m is None:
            raise DecodeError("data: malformed encrypted field", field="data", problem="malformed encrypted field")
        kid, version, body = m.groups()
        found = self._cached(kid)
        if found is None or found[0] != version:
            stored = self.store.get(kid)
            if stored is None or stored[0] != version:
                raise SubjectErased(kid)
            found = self._remember(kid, *stored)
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            return found[1].decrypt(raw[:_NONCE], raw[_NONCE:], f"{kid}:{version}".encode()).decode()
        except InvalidTag as exc:
            raise DecodeError(
                "data: an encrypted field does not authenticate", field="data", problem="tampered"
            ) from exc

    def destroy(self, refs: Iterable[str]) -> int:
        """Destroys the keys of these person refs (see ``refs_for``); returns how many existed."""
        kids = sorted({self.kid(r) for r in refs})
        self.forget(kids)
        return self.store.destroy(kids) if kids else 0

    # -- whole values (the compacted state topics) ---------------------------------------------
    def seal_bytes(self, ref: str, value: bytes) -> bytes:
        return self.seal(ref, value.decode()).encode()

    def open_bytes(self, value: bytes) -> bytes:
        """A sealed value's plaintext; a value written before encryption is returned as it is."""
        if not value.startswith(TOKEN_PREFIX.encode()):
            return value
        return self.open(value.decode()).encode()


# -- who an event is about ----------------------------------------------------------------------
def email_ref(email: str) -> str:
    return "email:" + normalise_email(email)


def phone_ref(phone: str) -> str:
    return "phone:" + (normalise_phone(phone) or phone.strip())


def lead_ref(lead_id: str) -> str:
    return "lead:" + lead_id


def refs_for(
    *, email: str | None = None, phone: str | None = None, lead_ids: Iterable[str] = (), identifiers: Iterable[str] = ()
) -> set[str]:
    """The refs whose keys an erasure destroys: the person's email, phone and lead ids, and the
    identifiers scoring held for their leads (``email:…``, ``phone:…``, ``badge:…``, ``ext:…``)."""
    out = {lead_ref(lid) for lid in lead_ids}
    if email and email.strip():
        out.add(email_ref(email))
    if phone and phone.strip():
        out.add(phone_ref(phone))
    out.update(i for i in identifiers if ":" in i)
    return out


def person_ref(payload: BaseModel) -> str | None:
    """The ref whose key seals this payload's personal fields (None: it names no one)."""
    identity = _attr(payload, "identity")
    if identity is not None:
        if _attr(identity, "email") and identity.email.strip():
            return email_ref(identity.email)
        if _attr(identity, "phone") and identity.phone.strip():
            return phone_ref(identity.phone)
        if _attr(identity, "show_id") and _attr(identity, "badge_id"):
            return "badge:" + normalise_badge(identity.show_id, identity.badge_id)
        if _attr(identity, "external_id"):
            return f"ext:{identity.external_id.strip()}"
    profile = _attr(payload, "profile")
    if profile is not None:
        if _attr(profile, "email") and "@" in profile.email:
            return email_ref(profile.email)
        if _attr(profile, "phone") and profile.phone.strip():
            return phone_ref(profile.phone)
    recipient = _attr(payload, "recipient")
    if recipient is not None and _attr(payload, "audience") == "lead":
        address = str(recipient.address)
        return email_ref(address) if "@" in address else phone_ref(address)
    if _attr(payload, "request_id") and _attr(payload, "subject_hash") is not None:
        return f"request:{payload.request_id}"  # type: ignore[attr-defined]
    lead_id = _attr(payload, "lead_id")
    if lead_id:
        return lead_ref(str(lead_id))
    return None


def _attr(obj: object, name: str) -> Any:
    """``getattr(obj, name, None)`` without the exception a pydantic model raises (and formats)
    for a name it lacks: about 1.5 us each, most of ``person_ref``'s cost for a payload that
    names a lead, not a person (a stage change probed six names first)."""
    cls: Any = type(obj)  # a class is hashable (mypy's ``type[object]`` is not known to be)
    return getattr(obj, name) if _has_attr(cls, name) else None


@functools.cache
def _has_attr(cls: type, name: str) -> bool:
    # a field (required ones are not class attributes), a property or any class attribute; no
    # payload allows extra fields (``extra="forbid"``), so the class tells for every instance
    fields = getattr(cls, "model_fields", None)
    return (isinstance(fields, dict) and name in fields) or hasattr(cls, name)


def sealing_ref(payload: BaseModel) -> str | None:
    """The ref whose key encoding this payload will seal with: ``person_ref`` when the payload
    holds a personal value, else None (no key is needed, none is created)."""
    ref = person_ref(payload)
    return ref if ref is not None and _holds_personal(payload) else None


def _holds_personal(payload: BaseModel) -> bool:
    for name, personal, sub in _plan(type(payload)):
        value = getattr(payload, name, None)
        if value is None:
            continue
        if personal:
            if _has_string(value):
                return True
        elif sub is not None:
            items = value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(v, BaseModel) and _holds_personal(v) for v in items):
                return True
    return False


def _has_string(value: Any) -> bool:
    # what a JSON-mode dump turns into a string (numbers, booleans and nulls are not sealed)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_string(v) for v in value)
    if isinstance(value, dict):
        return any(_has_string(v) for v in value.values())
    return value is not None and not isinstance(value, (bool, int, float))


# -- which fields are personal ------------------------------------------------------------------
def _is_personal(info: Any) -> bool:
    return any(m is PERSONAL for m in info.metadata)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if get_origin(annotation) is not None:  # unions, Optional, tuples, lists, dicts, Annotated
        for arg in get_args(annotation):
            yield from _models_in(arg)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation


def personal_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of the personal fields of a model (nested parts included), for docs and tests."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if _is_personal(info):
            out.append(path)
            continue
        for sub in _models_in(info.annotation):
            out.extend(personal_paths(sub, path + "."))
    return out


def _seal_all(value: Any, seal: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return seal(value)
    if isinstance(value, list):
        return [_seal_all(v, seal) for v in value]
    if isinstance(value, dict):
        return {k: _seal_all(v, seal) for k, v in value.items()}
    return value


@functools.cache
def _plan(model: type[BaseModel]) -> tuple[tuple[str, bool, type[BaseModel] | None], ...]:
    """Per field: its name, whether it is personal, and the nested model to walk into (if any)."""
    out = []
    for name, info in model.model_fields.items():
        personal = _is_personal(info)
        sub = None if personal else next(_models_in(info.annotation), None)
        if personal or sub is not None:
            out.append((name, personal, sub))
    return tuple(out)


def seal_fields(model: type[BaseModel], data: dict[str, Any], seal: Callable[[str], str]) -> dict[str, Any]:
    """``data`` (a JSON-mode dump of ``model``) with the strings of its personal fields sealed."""
    out = dict(data)
    for name, personal, sub in _plan(model):
        value = out.get(name)
        if value is None:
            continue
        if personal:
            out[name] = _seal_all(value, seal)
        elif sub is not None and isinstance(value, dict):
            out[name] = seal_fields(sub, value, seal)
        elif sub is not None and isinstance(value, list):
            out[name] = [seal_fields(sub, v, seal) if isinstance(v, dict) else v for v in value]
    return out


def open_fields(value: Any, open_: Callable[[str], str]) -> Any:
    """Every token inside a decoded JSON value opened (wherever it sits: old versions upcast too)."""
    if isinstance(value, str):
        return open_(value) if value.startswith(TOKEN_PREFIX) and _TOKEN.match(value) else value
    if isinstance(value, list):
        return [open_fields(v, open_) for v in value]
    if isinstance(value, dict):
        return {k: open_fields(v, open_) for k, v in value.items()}
    return value


# -- the process's keyring ------------------------------------------------------------------------
_installed: Keyring | None = None


def use_keyring(keyring: Keyring | None) -> Keyring | None:
    """Makes ``keyring`` the one the codec uses when a call passes none; returns the previous one.

    A service installs it once at start-up (``leadpipe.privacy.keystore.install_from_env``): the
    codec is called from many places (workers, the spool replay, CLIs) and every one of them must
    seal and open with the same keys."""
    global _installed
    previous, _installed = _installed, keyring
    return previous


def current_keyring() -> Keyring | None:
    return _installed
