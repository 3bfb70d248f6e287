"""``pgherd mesh create|add-node|status|verify|conflicts|drop``: what the CLI does, through
the members' agents (it never opens a SQL connection to a node).

Order matters when a mesh is set up: every member first gets its publication, the slots
that feed the others and the origins (prepare), and only then keeps the spec and starts
its workers (start), so that no change made after a slot exists can be missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pgherd.clients.agent import fan_out
from pgherd.clients.mesh import MeshClient
from pgherd.config import ClusterConfig, NodeConfig, describe
from pgherd.errors import AgentError, AgentUnreachable, InvalidInput, Refused
from pgherd.model import mesh as mesh_model
from pgherd.model.conflict import TIME_RESOLUTION_US, Policy
from pgherd.model.mesh import Chunk, MeshNodeReport, MeshSpec, RangeDifference

WHOLE_TABLE = 2**31 - 1  # a chunk size that gives one chunk: the whole table
Say = Callable[[str], None]


def _quiet(_text: str) -> None:
    pass


def build_spec(
    name: str,
    nodes: Sequence[str],
    tables: Sequence[str],
    policy: str,
    dbname: str,
    time_resolution_ms: int = TIME_RESOLUTION_US // 1000,
) -> MeshSpec:
    try:
        return MeshSpec(
            name=name,
            nodes=tuple(nodes),
            tables=tuple(mesh_model.qualify(t) for t in tables),
            policy=Policy(policy),
            dbname=dbname,
            time_resolution_us=time_resolution_ms * 1000,
        )
    except ValueError as exc:
        detail = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        raise InvalidInput(
            f"invalid mesh: {detail}",
            "mesh names: a-z, 0-9, _ (up to 20); --nodes a,b[,c]; --tables t1,s.t2; "
            f"--policy {'|'.join(p.value for p in Policy)}",
        ) from None


@dataclass(frozen=True)
class Mesh:
    """A config, the token and a mesh's members: what every operation needs."""

    config: ClusterConfig
    token: str

    def client(self, node: NodeConfig | str) -> MeshClient:
        target = self.config.node(node) if isinstance(node, str) else node
        return MeshClient(target, self.token)

    def members(self, spec: MeshSpec) -> list[NodeConfig]:
        return [self.config.node(n) for n in spec.nodes]

    def find(self, name: str) -> MeshSpec:
        """The mesh's spec, from the first node whose agent knows it."""
        unreachable: list[str] = []
        for node in self.config.nodes:
            try:
                specs = self.client(node).specs()
            except (AgentUnreachable, AgentError):
                unreachable.append(node.name)
                continue
            for spec in specs:
                if spec.name == name:
                    return spec
        hint = "create it with `pgherd mesh create`"
        if unreachable:
            hint += f" (no answer from {', '.join(unreachable)})"
        raise Refused(f"no node knows a mesh named {name}", hint)

    # ---- create and add-node ------------------------------------------------------------

    def create(self, spec: MeshSpec, say: Say = _quiet) -> MeshSpec:
        members = self.members(spec)
        facts = fan_out(members, lambda n: self.client(n).inspect(spec.dbname, list(spec.tables)))
        _refuse_problems(spec, mesh_model.create_problems(spec, facts))
        say(f"checked {len(members)} nodes: settings, primary keys, table definitions")
        self._require_same_rows(spec, members)
        say("the tables hold the same rows on every node")
        self._prepare_and_start(spec, members, say)
        return spec

    def add_node(self, name: str, node: str, say: Say = _quiet) -> MeshSpec:
        spec = self.find(name)
        if node in spec.nodes:
            raise Refused(f"{node} is already a member of mesh {name}", "nothing to do")
        new = spec.model_copy(update={"nodes": (*spec.nodes, node)})
        new = MeshSpec.model_validate(new.model_dump())
        newcomer = self.config.node(node)
        reference = self.members(spec)[0]
        facts = fan_out(
            [reference, newcomer],
            lambda n: self.client(n).inspect(spec.dbname, list(spec.tables)),
        )
        if name in facts[1].meshes:
            raise Refused(f"{node} already holds a mesh named {name}", "drop it there first")
        _refuse_problems(new, mesh_model.create_problems(new, facts, adding=True))
        say(f"checked {node} against {reference.name}")
        self._require_same_rows(new, [reference, newcomer])
        say(f"{node} holds the same rows as {reference.name}")
        self._prepare_and_start(new, self.members(new), say)
        return new

    def set_policy(self, name: str, policy: str, say: Say = _quiet) -> MeshSpec:
        """Change the conflict policy on every member; their workers restart with it (a
        worker stopped by ``error`` resolves the conflict by the new policy)."""
        spec = self.find(name)
        try:
            new = spec.model_copy(update={"policy": Policy(policy)})
        except ValueError:
            raise InvalidInput(
                f"unknown policy {policy!r}", f"use one of {', '.join(p.value for p in Policy)}"
            ) from None
        members = self.members(new)
        fan_out(members, lambda n: self.client(n).start(new))
        say(f"policy {new.policy} on {', '.join(n.name for n in members)}; workers restarted")
        return new

    def _prepare_and_start(self, spec: MeshSpec, members: list[NodeConfig], say: Say) -> None:
        created = fan_out(members, lambda n: self.client(n).prepare(spec))
        for member, what in zip(members, created, strict=True):
            if what:
                say(f"{member.name}: created {', '.join(what)}")
        fan_out(members, lambda n: self.client(n).start(spec))
        say(f"apply workers started on {', '.join(n.name for n in members)}")

    def _require_same_rows(self, spec: MeshSpec, members: list[NodeConfig]) -> None:
        for table in spec.tables:
            sums = fan_out(
                members,
                lambda n, t=table: self._whole_table(n, spec, t),  # type: ignore[misc]
            )
            if len({(c.rows, c.digest) for c in sums}) > 1:
                counts = ", ".join(f"{n.name} {c.rows}" for n, c in zip(members, sums, strict=True))
                raise Refused(
                    f"table {table} holds different rows on the nodes (rows: {counts})",
                    "a mesh starts from equal tables: empty them, or copy the rows from one "
                    "node to the others (pg_dump --data-only --table), then retry",
                )

    def _whole_table(self, node: NodeConfig, spec: MeshSpec, table: str) -> Chunk:
        return self.client(node).table_checksum(spec.dbname, table)

    # ---- status, verify, conflicts, drop --------------------------------------------------

    def status(self, name: str) -> list[dict[str, Any]]:
        """One row per ordered pair: the target's worker and the source's slot."""
        spec = self.find(name)
        members = self.members(spec)

        def one(node: NodeConfig) -> MeshNodeReport | str:
            try:
                return self.client(node).mesh_status(name)
            except (AgentUnreachable, AgentError, Refused) as exc:
                return exc.message

        answers = dict(zip(spec.nodes, fan_out(members, one), strict=True))
        rows = []
        for source, target in spec.pairs():
            answer = answers[target]
            row: dict[str, Any] = {"source": source, "target": target}
            if isinstance(answer, str):
                row |= {"state": "unknown", "error": answer}
            else:
                worker = next((w for w in answer.workers if w.source == source), None)
                row |= (
                    {"state": "not started"} if worker is None else worker.model_dump(mode="json")
                )
            slot_answer = answers[source]
            if not isinstance(slot_answer, str):
                slot = mesh_model.slot_name(name, target)
                found = next((s for s in slot_answer.slots if s.slot_name == slot), None)
                row["slot_active"] = found.active if found else None
                row["slot_retained_bytes"] = found.retained_bytes if found else None
            rows.append(row)
        return rows

    def verify(self, name: str, chunk_rows: int) -> tuple[MeshSpec, list[RangeDifference]]:
        spec = self.find(name)
        members = self.members(spec)
        differences: list[RangeDifference] = []
        for table in spec.tables:
            bounds, first = self.client(members[0]).checksums(name, table, chunk_rows)
            others = fan_out(
                members[1:],
                lambda n, t=table, b=bounds: self.client(n).checksums(name, t, chunk_rows, b)[1],  # type: ignore[misc]
            )
            chunks = {members[0].name: first}
            chunks |= {n.name: c for n, c in zip(members[1:], others, strict=True)}
            differences += mesh_model.differing_ranges(table, bounds, chunks)
        return spec, differences

    def conflicts(self, name: str, limit: int) -> list[dict[str, Any]]:
        spec = self.find(name)
        lists = fan_out(self.members(spec), lambda n: self.client(n).conflicts(name, limit))
        rows = [row for found in lists for row in found]
        rows.sort(key=lambda r: str(r["at"]), reverse=True)
        return rows[:limit]

    def drop(self, name: str, say: Say = _quiet) -> None:
        spec = self.find(name)
        members = self.members(spec)
        dropped = fan_out(members, lambda n: self.client(n).drop(name))
        for member, what in zip(members, dropped, strict=True):
            say(f"{member.name}: dropped {', '.join(what)}")


def _refuse_problems(spec: MeshSpec, problems: list[str]) -> None:
    if not problems:
        return
    more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if problems[1:] else ""
    raise Refused(
        f"cannot set up mesh {spec.name}: {problems[0]}{more}",
        "pgherd's nodes have logical WAL and commit timestamps; give every table a primary "
        "key and the same definition on every node (pgherd ddl), then retry",
    )
