"""The two systems bench/failover.py measures, behind one small interface: a pgherd lab
(through its CLI, its store pointed at the benchmark's etcd) and a Patroni cluster (three
``patroni`` processes run as ``postgres`` from a virtualenv on /usr/bin/python3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from bench import common
from pgherd import config as config_mod
from pgherd.config import EtcdDcs, HaConfig
from pgherd.lab.etcd_server import EtcdServer
from pgherd.pg import binaries, osuser, passfile, process

ROOT = Path("/var/tmp/pgherd-bench-failover")
PATRONI_VENV = Path("/var/lib/pgherd/patroni-venv")


def multi_host(ports: list[int], user: str, pgpass: Path) -> str:
    hosts = ",".join("127.0.0.1" for _ in ports)
    return (
        f"host={hosts} port={','.join(map(str, ports))} user={user} dbname=postgres "
        f"passfile={pgpass} target_session_attrs=read-write connect_timeout=2"
    )


# ---- a system under test ----------------------------------------------------------------


class System(Protocol):
    """What a benchmark run needs from pgherd or Patroni."""

    name: str
    conninfo: str

    def primary(self) -> str | None: ...

    def kill_postmaster(self, node: str) -> None: ...

    def kill_host(self, node: str) -> None: ...

    def restore(self, node: str) -> None: ...

    def healthy(self) -> bool: ...

    def close(self) -> None: ...


def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - still starting: try again
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def postmaster_of(data_dir: Path) -> int:
    pm = process.read_postmaster_pid(data_dir)
    if pm is None:
        raise RuntimeError(f"no postmaster.pid in {data_dir}")
    return pm.pid


def children_of(pid: int) -> list[int]:
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and process.parent_pid(int(e.name)) == pid
    ]


def kill_host_processes(agent: int, postmaster: int) -> None:
    """What a host loss does: the agent, the postmaster and every server process die at
    once (killing the postmaster alone leaves its backends running for a moment, and a
    client's session on one may still commit)."""
    victims = [agent, postmaster, *children_of(postmaster)]
    for pid in victims:
        process.signal_pid(pid, signal.SIGKILL)


# ---- pgherd -----------------------------------------------------------------------------


class Pgherd:
    def __init__(self, label: str, etcd: EtcdServer, ha: dict[str, Any], sync: bool) -> None:
        self.name = label
        self.directory = ROOT / label.replace(" ", "-").replace(",", "")
        common.remove_lab(self.directory)
        base = common.free_port_base(3, (0, 1000, 2000, 3000))
        self.lab = common.Lab(self.directory, 3, base)
        argv = [*self.lab.pgherd, "lab", "up", "--dir", str(self.directory), "--nodes", "3"]
        argv += ["--port-base", str(base), "--dcs", "etcd", *(["--sync"] if sync else [])]
        # Plain text, as the Patroni runs here speak to the same plain etcd: TLS's own
        # cost is measured on its own, in bench/tls.py.
        argv += ["--no-tls"]
        common.run_checked(argv, timeout=900)
        # The lab's own etcd is replaced by the benchmark's (the same for Patroni), with
        # the settings under test.
        common.run_checked([*self.lab.pgherd, "lab", "down", "--dir", str(self.directory)], 300)
        config = config_mod.load(self.lab.config_path)
        assert config.ha is not None
        # A cluster name of its own: the benchmark's etcd outlives each system's run, and
        # the store remembers a cluster's system identifier (its initialize key), so a
        # second lab called "lab" would rightly be refused as another cluster's data.
        changed = config.model_copy(
            update={
                "cluster": self.directory.name.replace("-", "_"),
                "ha": HaConfig(dcs=EtcdDcs(etcd=(etcd.url,)), synchronous=sync, **ha),
            }
        )
        osuser.resolve(config.os_user).write_file(self.lab.config_path, config_mod.dump(changed))
        common.run_checked(
            [*self.lab.pgherd, "lab", "up", "--dir", str(self.directory)], timeout=300
        )
        self.config = changed
        self.conninfo = multi_host([n.port for n in changed.nodes], "postgres", changed.passfile)
        wait(self.healthy, 120, "the pgherd lab")

    def show(self) -> dict[str, Any]:
        done = self.lab.cli("cluster", "show", "--json", check=False, timeout=60)
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def primary(self) -> str | None:
        name = self.show()["primary"]
        return name if isinstance(name, str) else None

    def healthy(self) -> bool:
        data = self.show()
        return not data["problems"] and data["ha"]["leader"] == data["primary"]

    def kill_postmaster(self, node: str) -> None:
        process.signal_pid(postmaster_of(self.config.node(node).data_dir), signal.SIGKILL)

    def kill_host(self, node: str) -> None:
        from pgherd.lab import agents

        pm = postmaster_of(self.config.node(node).data_dir)
        agent = agents.running_agent(self.config.node(node))
        assert agent is not None
        kill_host_processes(agent, pm)

    def restore(self, node: str) -> None:
        common.run_checked([*self.lab.pgherd, "lab", "up", "--dir", str(self.directory)], 300)
        common.reap()

    def close(self) -> None:
        common.remove_lab(self.directory)


# ---- Patroni ----------------------------------------------------------------------------


def patroni_venv() -> Path:
    """Patroni's virtualenv, built if absent (from /usr/bin/python3, readable by postgres)."""
    patroni = PATRONI_VENV / "bin" / "patroni"
    if not patroni.exists():
        common.console.print(f"building {PATRONI_VENV} (pip install patroni[etcd3])")
        common.run_checked(["/usr/bin/python3", "-m", "venv", str(PATRONI_VENV)], 300)
        common.run_checked(
            [
                str(PATRONI_VENV / "bin" / "pip"),
                "install",
                "-q",
                "patroni[etcd3]",
                "psycopg2-binary",
            ],
            900,
        )
        common.run_checked(["chmod", "-R", "a+rX", str(PATRONI_VENV)], 60)
    return patroni


class Patroni:
    def __init__(self, label: str, etcd: EtcdServer, dcs: dict[str, Any]) -> None:
        self.name = label
        self.directory = ROOT / label.replace(" ", "-").replace(",", "")
        common.remove_tree(self.directory)
        self.user = osuser.resolve(common.OS_USER)
        self.user.make_dir(self.directory)
        self.binary = patroni_venv()
        self.pgbin = binaries.find(None).bindir
        base = common.free_port_base(3, (0, 1000))
        self.ports = [base + i for i in range(3)]
        self.api = [base + 1000 + i for i in range(3)]
        self.names = [f"p{i + 1}" for i in range(3)]
        self.scope = f"bench{base}"
        passwords = {
            "postgres": passfile.generate_password(),
            "replicator": passfile.generate_password(),
        }
        self.pgpass = self.directory / "pgpass"
        self.user.write_file(self.pgpass, passfile.render(passwords))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for i, name in enumerate(self.names):
            self._write_config(i, name, etcd, dcs, passwords)
        self._start(self.names[0])
        wait(lambda: self.primary() == self.names[0], 120, "Patroni to bootstrap")
        for name in self.names[1:]:
            self._start(name)
        self.conninfo = multi_host(self.ports, "postgres", self.pgpass)
        wait(self.healthy, 300, "the Patroni cluster")

    def _write_config(
        self, i: int, name: str, etcd: EtcdServer, dcs: dict[str, Any], passwords: dict[str, str]
    ) -> None:
        home = self.directory / name
        self.user.make_dir(home)
        cfg = {
            "scope": self.scope,
            "name": name,
            "restapi": {
                "listen": f"127.0.0.1:{self.api[i]}",
                "connect_address": f"127.0.0.1:{self.api[i]}",
            },
            "etcd3": {"hosts": f"127.0.0.1:{etcd.client_port}"},
            "bootstrap": {
                "dcs": {
                    **dcs,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "parameters": {"wal_log_hints": "on", "wal_keep_size": "512MB"},
                    },
                },
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.ports[i]}",
                "connect_address": f"127.0.0.1:{self.ports[i]}",
                "data_dir": str(home / "data"),
                "bin_dir": str(self.pgbin),
                "pgpass": str(home / "pgpass-patroni"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": passwords["postgres"]},
                    "replication": {
                        "username": "replicator",
                        "password": passwords["replicator"],
                    },
                    "rewind": {"username": "postgres", "password": passwords["postgres"]},
                },
                "pg_hba": [
                    "local all all peer",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
                "parameters": {"unix_socket_directories": str(home)},
            },
        }
        # The file holds Patroni's passwords (as its own config does): 0600, postgres's.
        self.user.write_file(home / "patroni.yml", json.dumps(cfg))

    def _start(self, name: str) -> None:
        home = self.directory / name
        log = os.open(home / "patroni.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.user.chown(home / "patroni.log")
            self.procs[name] = subprocess.Popen(
                [str(self.binary), str(home / "patroni.yml")],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=home,
                env={"PATH": "/usr/bin:/bin", "HOME": str(self.user.home), "LC_ALL": "C.UTF-8"},
                user=self.user.uid,
                group=self.user.gid,
                extra_groups=[],
                start_new_session=True,
            )
        finally:
            os.close(log)

    def _cluster(self) -> dict[str, Any]:
        for port in self.api:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=2) as r:
                    data: dict[str, Any] = json.loads(r.read())
                    return data
            except OSError:
                continue
        raise RuntimeError("no Patroni REST API answered")

    def primary(self) -> str | None:
        for member in self._cluster().get("members", []):
            if (
                member.get("role") in ("leader", "master", "primary")
                and member.get("state") == "running"
            ):
                return str(member["name"])
        return None

    def healthy(self) -> bool:
        members = self._cluster().get("members", [])
        leaders = [m for m in members if m.get("role") in ("leader", "master", "primary")]
        streaming = [m for m in members if m.get("state") == "streaming"]
        return (
            len(members) == 3
            and len(leaders) == 1
            and leaders[0].get("state") == "running"
            and len(streaming) == 2
        )

    def kill_postmaster(self, node: str) -> None:
        process.signal_pid(postmaster_of(self.directory / node / "data"), signal.SIGKILL)

    def kill_host(self, node: str) -> None:
        pm = postmaster_of(self.directory / node / "data")
        kill_host_processes(self.procs[node].pid, pm)
        self.procs[node].wait(10)

    def restore(self, node: str) -> None:
        common.reap()
        if self.procs[node].poll() is not None:
            self._start(node)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for name in self.names:
            pm = process.running_postmaster(self.directory / name / "data")
            if pm is not None:
                process.signal_pid(pm.pid, signal.SIGQUIT)
                process.wait_gone(pm.pid, 20)
        common.reap()
        common.remove_tree(self.directory)
