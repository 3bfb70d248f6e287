"""The agent of a witness: a member without data (docs/failover.md).

It checks in to the coordination store every ``loop_wait`` (so ``cluster show`` lists it)
and answers ``/health``; it never takes the lease, having no PostgreSQL to promote. What
makes a witness useful is the store's quorum: with etcd, the witness's host runs the
third etcd member of a two-data-node cluster, so that losing either data host leaves a
majority. With sqlite (one machine) a witness adds nothing but a name in the list.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI

from pgherd.api.serving import uvicorn_tls
from pgherd.config import ClusterConfig, fingerprint
from pgherd.dcs.base import Store, StoreUnavailable
from pgherd.dcs.checkin import CheckIn, keep_for
from pgherd.dcs.open import open_store
from pgherd.pg import process

log = logging.getLogger("pgherd.witness")


class Witness:
    def __init__(self, config: ClusterConfig, name: str) -> None:
        assert config.ha is not None
        self.config = config
        self.name = name
        self.node = config.witness(name)
        assert self.node is not None
        self.ttl = config.ha.ttl
        self.loop_wait = config.ha.loop_wait
        self.fingerprint = fingerprint(config)
        self._store: Store | None = None
        self._stop = threading.Event()
        self.store_ok = False
        self.leader: str | None = None

    def check_in(self) -> None:
        assert self.node is not None
        try:
            if self._store is None:
                self._store = open_store(self.config)
            snapshot = self._store.snapshot()
            self.leader = snapshot.leader.name if snapshot.leader else None
            checkin = CheckIn(
                name=self.name,
                kind="witness",
                api_url=self.node.api_url,
                decision="a witness: no data, never a leader",
                at=time.time(),
                config_fingerprint=self.fingerprint,
            )
            self._store.touch_member(self.name, checkin.model_dump_json(), keep_for(self.ttl))
        except StoreUnavailable as exc:
            if self.store_ok:
                log.warning("the store did not answer: %s", exc.message)
            self.store_ok = False
            return
        if not self.store_ok:
            log.info("checked in to the store; leader: %s", self.leader or "none")
        self.store_ok = True

    def run(self) -> None:
        while not self._stop.is_set():
            self.check_in()
            self._stop.wait(self.loop_wait)

    def stop(self) -> None:
        self._stop.set()

    def state(self) -> dict[str, Any]:
        return {
            "mode": "witness",
            "role": "witness",
            "store_ok": self.store_ok,
            "leader": self.leader,
        }


def run(config: ClusterConfig, name: str) -> None:
    node = config.witness(name)
    assert node is not None
    witness = Witness(config, name)
    process.set_process_name(process.AGENT_PROCESS_NAME)
    node.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    node.agent_pid_file.write_text(f"{os.getpid()}\n")
    log.info("witness %s of cluster %s; API on %s", name, config.cluster, node.api_url)
    # systemctl reload must not stop it (SIGHUP's default): a witness holds only its name,
    # its address and the store, which an agent restart applies.
    signal.signal(
        signal.SIGHUP,
        lambda _s, _f: log.info("SIGHUP: a witness reads pgherd.yaml at start only; restart it"),
    )
    threading.Thread(target=witness.run, name="witness", daemon=True).start()
    app = FastAPI(title="pgherd witness", version="1")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"state": "running", "role": "witness"}

    @app.get("/ha")
    def ha() -> dict[str, Any]:
        return witness.state()

    try:
        uvicorn.Server(
            uvicorn.Config(
                app,
                host=node.api_host,
                port=node.api_port,
                log_level="warning",
                access_log=False,
                **uvicorn_tls(config, name),
            )
        ).run()
    finally:
        witness.stop()
        node.agent_pid_file.unlink(missing_ok=True)
