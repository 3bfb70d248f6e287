"""etcd v3 through its JSON gateway (``/v3/...``): no grpc, just HTTP and base64.

The leader key is bound to a lease: acquiring is a transaction that puts the key only
if its create revision is 0 (absent); renewing is a lease keep-alive after checking the
key is still ours; releasing is a transaction that deletes only if the value is ours.
Several endpoints may be given; a request moves on to the next endpoint when one does
not answer, and the store is unavailable only when none does. Each call (a method of the
store, however many requests it makes) has one deadline, ``timeout`` after it starts,
shared between the endpoints as model/store_budget.py decides: half of it for the one
that answered last, the rest split among the others. With the pooled transport a
connection to every endpoint is kept open (dcs/etcd_transport.py), so moving to another
endpoint costs no handshake.

Over HTTPS the members are verified against ``verify`` (an SSL context holding the CA
and, for etcd's ``--client-cert-auth``, this client's certificate). With ``auth`` (user,
password) the store authenticates first and sends etcd's token with every call, getting
a new one when etcd says it expired.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from pgherd.dcs.base import Leader, Member, Snapshot, StoreUnavailable, Versioned
from pgherd.dcs.etcd_transport import (
    OneShotTransport,
    PooledTransport,
    Transport,
    TransportError,
)
from pgherd.model.store_budget import attempt_limit

F = TypeVar("F", bound=Callable[..., Any])


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with ``prefix`` (etcd's convention)."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def _version_is(key: str, version: int) -> dict[str, str]:
    """A transaction's comparison: the key is absent (0), or its mod revision is ``version``."""
    if version == 0:
        return {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
    return {"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": str(version)}


def _bounded(method: F) -> F:
    """A public call of the store: its requests share one deadline, ``timeout`` after the
    call starts (a call made inside another keeps the outer one's)."""

    @functools.wraps(method)
    def call(self: EtcdStore, *args: Any, **kwargs: Any) -> Any:
        with self._deadline():
            return method(self, *args, **kwargs)

    return cast(F, call)


class EtcdStore:
    def __init__(
        self,
        endpoints: Sequence[str],
        prefix: str,
        timeout: float = 2.0,
        verify: ssl.SSLContext | bool = True,
        auth: tuple[str, str] | None = None,
        one_shot: bool = False,
        keep_warm: bool | None = None,
    ) -> None:
        """``timeout``: the longest one call may take, over every endpoint it tries
        (the agents': ``ha.retry_timeout``). ``one_shot``: a connection per request through
        the standard library, for a command that makes a few calls and exits; else pooled
        connections (httpx), for a store used for long (dcs/etcd_transport.py). Both
        verify with ``verify``. ``keep_warm`` (pooled only, the default there): keep a
        connection open to every endpoint."""
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self.prefix = f"/pgherd/{prefix.strip('/')}/"
        # Events live outside the prefix so that a snapshot's range does not read them.
        self.events_prefix = f"/pgherd-events/{prefix.strip('/')}/"
        if one_shot:
            self._transport: Transport = OneShotTransport(timeout, verify)
        else:
            warm = self.endpoints if keep_warm is None or keep_warm else ()
            self._transport = PooledTransport(timeout, verify, endpoints=warm)
        self._auth = auth
        self._auth_token: str | None = None
        self._lease: tuple[str, str] | None = None  # (holder name, lease id)
        # name → (lease id, TTL, monotonic time of its last keep-alive): a member's check-in
        # reuses one lease instead of granting a new one every cycle.
        self._member_leases: dict[str, tuple[str, float, float]] = {}
        self._lock = threading.Lock()
        self._preferred = 0
        self._calls = threading.local()  # .deadline: the running call's, in this thread

    # ---- transport ---------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """How requests reach etcd (the pooled one counts the connections it opens)."""
        return self._transport

    @contextmanager
    def _deadline(self) -> Iterator[float]:
        outer: float | None = getattr(self._calls, "deadline", None)
        if outer is not None:
            yield outer
            return
        self._calls.deadline = time.monotonic() + self.timeout
        try:
            yield self._calls.deadline
        finally:
            self._calls.deadline = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The leader calls' lock, waited for only as long as the call's deadline allows
        (the holder's own call is bounded the same way)."""
        with self._deadline() as deadline:
            if not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
                raise StoreUnavailable(
                    f"another call to etcd held this client for the whole {self.timeout:g} s"
                )
        try:
            yield
        finally:
            self._lock.release()

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._auth is None:
            return self._send(path, body)
        if self._auth_token is None:
            self._authenticate()
        try:
            return self._send(path, body)
        except StoreUnavailable as exc:
            if "auth token" not in exc.message and "permission denied" not in exc.message:
                raise
        self._authenticate()  # the token expired (etcd's simple tokens last minutes)
        return self._send(path, body)

    def _authenticate(self) -> None:
        assert self._auth is not None
        user, password = self._auth
        self._auth_token = None
        data = self._send("auth/authenticate", {"name": user, "password": password})
        token = data.get("token")
        if not token:
            raise StoreUnavailable(f"etcd did not authenticate {user!r}")
        self._auth_token = str(token)

    def _send(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors = []
        headers = {"Authorization": self._auth_token} if self._auth_token else None
        count = len(self.endpoints)
        first = self._preferred
        with self._deadline() as deadline:
            for i in range(count):
                index = (first + i) % count
                limit = attempt_limit(deadline - time.monotonic(), count - i, preferred=i == 0)
                if limit <= 0:
                    errors.append(f"not tried: the call's {self.timeout:g} s were spent")
                    break
                url = f"{self.endpoints[index]}/v3/{path}"
                try:
                    status, raw = self._transport.post(url, body, headers, timeout=limit)
                except TransportError as exc:
                    errors.append(f"{self.endpoints[index]}: {exc} (after {limit:.2f} s)")
                    continue
                if status >= 500:
                    errors.append(f"{self.endpoints[index]}: HTTP {status}")
                    continue
                self._preferred = index
                return self._answer(path, status, raw)
        raise StoreUnavailable("no etcd endpoint answered: " + "; ".join(errors))

    @staticmethod
    def _answer(path: str, status: int, raw: bytes) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(raw)
        except ValueError:
            text = raw.decode(errors="replace")
            raise StoreUnavailable(
                f"etcd answered {path} with HTTP {status} and no JSON: {text[:200]!r}"
            ) from None
        if status >= 400:
            raise StoreUnavailable(f"etcd refused {path}: {data.get('message', data)}")
        return data

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _range(self, key: str, prefix: bool = False) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _prefix_end(key)
        kvs: list[dict[str, Any]] = self._call("kv/range", body).get("kvs", [])
        return kvs

    def _grant(self, ttl: float) -> str:
        lease_id: str = self._call("lease/grant", {"TTL": max(math.ceil(ttl), 1)})["ID"]
        return lease_id

    def _lease_ttl(self, lease: str) -> float | None:
        data = self._call("lease/timetolive", {"ID": lease})
        ttl = int(data.get("TTL", -1))
        return None if ttl < 0 else float(ttl)

    # ---- leader ------------------------------------------------------------------------

    @_bounded
    def acquire_leader(self, name: str, ttl: float) -> bool:
        with self._locked():
            lease = self._grant(ttl)
            key = _b64(self._key("leader"))
            result = self._call(
                "kv/txn",
                {
                    "compare": [
                        {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
                    ],
                    "success": [{"request_put": {"key": key, "value": _b64(name), "lease": lease}}],
                },
            )
            if result.get("succeeded"):
                self._lease = (name, lease)
                return True
            self._call("lease/revoke", {"ID": lease})
            return False

    @_bounded
    def renew_leader(self, name: str, ttl: float) -> bool:
        with self._locked():
            kvs = self._range(self._key("leader"))
            if not kvs or _unb64(kvs[0]["value"]) != name:
                return False
            lease = kvs[0].get("lease", "0")
            if self._lease is None or self._lease != (name, lease):
                # A restarted agent finds its own key: adopt the lease it holds.
                self._lease = (name, lease)
            return self._keepalive(lease)

    @_bounded
    def release_leader(self, name: str) -> bool:
        with self._locked():
            key = _b64(self._key("leader"))
            result = self._call(
                "kv/txn",
                {
                    "compare": [
                        {"key": key, "target": "VALUE", "result": "EQUAL", "value": _b64(name)}
                    ],
                    "success": [{"request_delete_range": {"key": key}}],
                },
            )
            if result.get("succeeded") and self._lease is not None and self._lease[0] == name:
                self._call("lease/revoke", {"ID": self._lease[1]})
                self._lease = None
            return bool(result.get("succeeded"))

    @_bounded
    def leader(self) -> Leader | None:
        kvs = self._range(self._key("leader"))
        if not kvs:
            return None
        lease = kvs[0].get("lease")
        ttl = self._lease_ttl(lease) if lease else None
        return Leader(_unb64(kvs[0]["value"]), ttl)

    # ---- members, config, events -------------------------------------------------------

    @_bounded
    def touch_member(self, name: str, data: str, ttl: float) -> None:
        key = _b64(self._key(f"members/{name}"))
        held = self._member_leases.get(name)
        now = time.monotonic()
        if held is not None and held[1] == ttl and now - held[2] < ttl / 3:
            lease = held[0]
        elif held is not None and held[1] == ttl and self._keepalive(held[0]):
            lease = held[0]
            self._member_leases[name] = (lease, ttl, now)
        else:
            lease = self._grant(ttl)
            self._member_leases[name] = (lease, ttl, now)
        try:
            self._call("kv/put", {"key": key, "value": _b64(data), "lease": lease})
        except StoreUnavailable as exc:
            if "lease not found" not in exc.message:
                raise
            # The lease expired between two check-ins (a long pause): start a new one.
            lease = self._grant(ttl)
            self._member_leases[name] = (lease, ttl, time.monotonic())
            self._call("kv/put", {"key": key, "value": _b64(data), "lease": lease})

    def _keepalive(self, lease: str) -> bool:
        result = self._call("lease/keepalive", {"ID": lease}).get("result", {})
        return int(result.get("TTL", 0)) > 0

    @_bounded
    def remove_member(self, name: str) -> None:
        self._member_leases.pop(name, None)
        self._call("kv/deleterange", {"key": _b64(self._key(f"members/{name}"))})

    @_bounded
    def members(self) -> tuple[Member, ...]:
        kvs = self._range(self._key("members/"), prefix=True)
        cut = len(self._key("members/"))
        return tuple(Member(_unb64(kv["key"])[cut:], _unb64(kv["value"])) for kv in kvs)

    @_bounded
    def config(self) -> Versioned | None:
        kvs = self._range(self._key("config"))
        if not kvs:
            return None
        return Versioned(_unb64(kvs[0]["value"]), int(kvs[0]["mod_revision"]))

    @_bounded
    def set_config(self, value: str, expected_version: int) -> bool:
        return self._put_if_version("config", value, expected_version)

    def _put_if_version(self, name: str, value: str, expected_version: int) -> bool:
        """Put ``name`` only if its mod revision is ``expected_version`` (0: absent)."""
        key = _b64(self._key(name))
        result = self._call(
            "kv/txn",
            {
                "compare": [_version_is(key, expected_version)],
                "success": [{"request_put": {"key": key, "value": _b64(value)}}],
            },
        )
        return bool(result.get("succeeded"))

    # ---- initialize ----------------------------------------------------------------------

    @_bounded
    def initialize(self, value: str, expected_version: int = 0) -> bool:
        return self._put_if_version("initialize", value, expected_version)

    @_bounded
    def initialization(self) -> Versioned | None:
        kvs = self._range(self._key("initialize"))
        if not kvs:
            return None
        return Versioned(_unb64(kvs[0]["value"]), int(kvs[0]["mod_revision"]))

    @_bounded
    def cancel_initialization(self, expected_version: int) -> bool:
        if expected_version == 0:
            return False
        key = _b64(self._key("initialize"))
        result = self._call(
            "kv/txn",
            {
                "compare": [_version_is(key, expected_version)],
                "success": [{"request_delete_range": {"key": key}}],
            },
        )
        return bool(result.get("succeeded"))

    @_bounded
    def append_event(self, event: str) -> None:
        # Keys sort by time (nanoseconds, zero-padded); the suffix keeps two writers apart.
        key = f"{self.events_prefix}{time.time_ns():020d}-{os.urandom(3).hex()}"
        self._call("kv/put", {"key": _b64(key), "value": _b64(event)})

    @_bounded
    def events(self, limit: int = 100) -> tuple[str, ...]:
        prefix = self.events_prefix
        data = self._call(
            "kv/range",
            {
                "key": _b64(prefix),
                "range_end": _prefix_end(prefix),
                "sort_order": "DESCEND",
                "sort_target": "KEY",
                "limit": limit,
            },
        )
        return tuple(_unb64(kv["value"]) for kv in reversed(data.get("kvs", [])))

    @_bounded
    def snapshot(self) -> Snapshot:
        kvs = self._range(self.prefix, prefix=True)
        leader = None
        members = []
        config = None
        initialize = None
        for kv in kvs:
            name = _unb64(kv["key"])[len(self.prefix) :]
            value = _unb64(kv["value"])
            if name == "leader":
                leader = Leader(value, None)
            elif name.startswith("members/"):
                members.append(Member(name.removeprefix("members/"), value))
            elif name == "config":
                config = Versioned(value, int(kv["mod_revision"]))
            elif name == "initialize":
                initialize = Versioned(value, int(kv["mod_revision"]))
        return Snapshot(leader, tuple(members), config, time.time(), initialize)

    def close(self) -> None:
        self._transport.close()
