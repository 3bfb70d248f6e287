"""``pgherd mesh create|add-node|status|verify|conflicts|drop``: what the CLI does, through
the members' agents (it never opens a SQL connection to a node).

Order matters when a mesh is set up: every member first gets its publication, the slots
that feed the others and the origins (prepare), and only then keeps the spec and starts
its workers (start), so that no change made after a slot exists can be missed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pgherd.clients.agent import fan_out, statuses
from pgherd.clients.mesh import MeshClient
from pgherd.config import ClusterConfig, NodeConfig, describe, read_token
from pgherd.errors import AgentError, AgentUnreachable, InvalidInput, PgherdError, Refused
from pgherd.mesh import members as mesh_members
from pgherd.model import mesh as mesh_model
from pgherd.model import mesh_copy, mesh_sequences
from pgherd.model.conflict import TIME_RESOLUTION_US, Policy
from pgherd.model.mesh import (
    Chunk,
    ConflictFilter,
    MeshConflict,
    MeshNodeReport,
    MeshSpec,
    NodeFacts,
    RangeDifference,
    Topology,
)
from pgherd.model.mesh_copy import CopyRequest, CopyState, CopyStatus, JoinPlan
from pgherd.model.mesh_members import NoPrimary, member_primary
from pgherd.model.mesh_sequences import DEFAULT_STEP, Collision, SequencePlan
from pgherd.model.status_lite import PgState, Role

WHOLE_TABLE = 2**31 - 1  # a chunk size that gives one chunk: the whole table
COPY_POLL = 0.5  # seconds between looks at the newcomers' copies
PROGRESS_EVERY = 5.0  # seconds between progress lines
DIFFERING_KEYS = 5  # keys named when members' rows differ
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
    sequence_step: int = DEFAULT_STEP,
    topology: str = Topology.FULL.value,
) -> MeshSpec:
    try:
        return MeshSpec(
            name=name,
            nodes=tuple(nodes),
            tables=tuple(mesh_model.qualify(t) for t in tables),
            policy=Policy(policy),
            dbname=dbname,
            time_resolution_us=time_resolution_ms * 1000,
            sequence_step=sequence_step,
            topology=Topology(topology),
        )
    except ValueError as exc:
        detail = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        raise InvalidInput(
            f"invalid mesh: {detail}",
            "mesh names: a-z, 0-9, _ (up to 20); --nodes a,b[,c]; --tables t1,s.t2; "
            f"--policy {'|'.join(p.value for p in Policy)}; --sequence-step 1..1000; "
            f"--topology {'|'.join(t.value for t in Topology)}",
        ) from None


@dataclass(frozen=True)
class Reached:
    """A member as the CLI reaches it: the agent that answers for it (the node itself, or
    a cluster member's primary), with its cluster's token, and every node that keeps the
    mesh's spec (a cluster member's standbys too)."""

    name: str
    agent: NodeConfig
    token: str
    nodes: tuple[NodeConfig, ...]
    cluster: bool


@dataclass(frozen=True)
class Mesh:
    """A config, the token and a mesh's members: what every operation needs."""

    config: ClusterConfig
    token: str

    def client(self, node: Reached | NodeConfig | str) -> MeshClient:
        if isinstance(node, Reached):
            return MeshClient(node.agent, node.token)
        if isinstance(node, str):
            return self.client(self.member(node))
        return MeshClient(node, self.token)

    def member(self, name: str, found: list[ClusterConfig] | None = None) -> Reached:
        """A member by its name in ``--nodes``: a node, or a cluster (this config's, or a
        peer's) answered for by its running primary."""
        member = mesh_members.resolve(self.config, name, found)
        token = self.token if member.config is self.config else read_token(member.config)
        if not member.cluster or len(member.nodes) == 1:
            agent = member.nodes[0]
        else:
            seen = statuses(member.nodes)
            primaries = [
                s.name for s in seen if s.role is Role.PRIMARY and s.state is PgState.RUNNING
            ]
            unreachable = [s.name for s in seen if s.state is PgState.UNREACHABLE]
            try:
                agent = member.config.node(member_primary(name, primaries, unreachable))
            except NoPrimary as exc:
                raise Refused(f"mesh member {exc}", "see pgherd cluster show") from None
        return Reached(name, agent, token, member.nodes, member.cluster)

    def members(self, spec: MeshSpec) -> list[Reached]:
        found = mesh_members.configs(self.config)
        return [self.member(n, found) for n in spec.nodes]

    def find(self, name: str) -> MeshSpec:
        """The mesh's spec, from the first node whose agent knows it (this config's nodes,
        then the peers')."""
        unreachable: list[str] = []
        for config in mesh_members.configs(self.config):
            token = self.token if config is self.config else read_token(config)
            for node in config.nodes:
                try:
                    specs = MeshClient(node, token).specs()
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

    def create(
        self,
        spec: MeshSpec,
        say: Say = _quiet,
        copy_from: str | None = None,
        merge: bool = False,
    ) -> MeshSpec:
        """Set up a mesh between members whose tables hold the same rows; or, with
        ``copy_from``, replace the others' rows by a copy of that member's; or, with
        ``merge``, give every member the others' rows (keys must differ between members)."""
        if copy_from is not None and merge:
            raise InvalidInput(
                "--initial-copy-from and --merge exclude each other",
                "copy from one node, or merge every node's rows",
            )
        if copy_from is not None and copy_from not in spec.nodes:
            raise InvalidInput(
                f"--initial-copy-from {copy_from} is not one of --nodes",
                f"choose one of {', '.join(spec.nodes)}",
            )
        if copy_from is not None or merge:
            self._nodes_only(spec, "an initial copy (--initial-copy-from, --merge)")
        members = self.members(spec)
        plan = None
        if copy_from is not None:
            plan = mesh_copy.plan_create_from(spec.nodes, copy_from)
        elif merge:
            plan = mesh_copy.plan_merge(spec.nodes)
        if plan is not None:
            _require_copy_pairs(spec, plan)
        facts = self._inspect(spec, members)
        absent_ok = [n for n in spec.nodes if n != copy_from] if plan is not None else []
        _refuse_problems(spec, mesh_model.create_problems(spec, facts, absent_ok=absent_ok))
        sequences = _sequence_plan(spec, facts)
        say(f"checked {len(members)} nodes: settings, primary keys, table definitions")
        if plan is None:
            self._require_same_rows(spec, members)
            say("the tables hold the same rows on every node")
            self._prepare_and_start(spec, members, sequences, say)
        else:
            self._join(spec, plan, list(spec.nodes), say)
        return spec

    def add_node(
        self, name: str, node: str, say: Say = _quiet, copy_from: str | None = None
    ) -> MeshSpec:
        """Add ``node``: its tables are copied from a member when they are empty or absent
        (or, with ``copy_from``, replaced by that member's rows); tables that already hold
        the members' rows join as they are."""
        spec = self.find(name)
        if node in spec.nodes:
            raise Refused(f"{node} is already a member of mesh {name}", "nothing to do")
        self._nodes_only(spec.model_copy(update={"nodes": (*spec.nodes, node)}), "add-node")
        if copy_from is not None and copy_from not in spec.nodes:
            raise InvalidInput(
                f"--initial-copy-from {copy_from} is not a member of mesh {name}",
                f"its members are {', '.join(spec.nodes)}",
            )
        new = spec.model_copy(update={"nodes": (*spec.nodes, node)})
        new = MeshSpec.model_validate(new.model_dump())
        newcomer = self.member(node)
        # In a star or a chain the newcomer streams from one member only (the hub, the
        # last node): it copies from that one.
        neighbours = new.sources_of(node)
        if copy_from is not None and copy_from not in neighbours:
            raise InvalidInput(
                f"--initial-copy-from {copy_from}: in this {new.topology} mesh {node} "
                f"streams from {', '.join(neighbours)} only",
                f"copy from {neighbours[0]}",
            )
        reference = self.member(copy_from or neighbours[0])
        all_facts = self._inspect(new, self.members(new))
        facts = [next(f for f in all_facts if f.node == reference.name), all_facts[-1]]
        if name in facts[1].meshes:
            raise Refused(f"{node} already holds a mesh named {name}", "drop it there first")
        problems = mesh_model.create_problems(new, facts, adding=True, absent_ok=[node])
        _refuse_problems(new, problems)
        sequences = _sequence_plan(new, all_facts)
        say(f"checked {node} against {reference.name}")
        absent = [t for t, d in facts[1].tables.items() if d is None]
        present = [t for t in new.tables if t not in absent]
        if copy_from is None and absent:
            self._require_empty(new, newcomer, present)
        copy = (
            copy_from is not None
            or bool(absent)
            or all(self._whole_table(newcomer, new, t).rows == 0 for t in present)
        )
        if copy:
            plan = mesh_copy.plan_add(spec.nodes, node, reference.name)
            self._join(new, plan, [node], say)
            return new
        self._require_same_rows(new, [reference, newcomer])
        say(f"{node} holds the same rows as {reference.name}")
        self._prepare_and_start(new, self.members(new), sequences, say)
        return new

    def _join(self, spec: MeshSpec, plan: JoinPlan, undo: list[str], say: Say) -> None:
        """Set up the pairs, copy the rows into the newcomers, start each stream where the
        copies say, then start the workers. A failure undoes what serves the pairs with the
        nodes in ``undo`` (every member, for a mesh being created)."""
        members = self.members(spec)
        created = fan_out(members, lambda n: self.client(n).prepare(spec, plan))
        for member, what in zip(members, created, strict=True):
            if what:
                say(f"{member.name}: created {', '.join(what)}")
        try:
            done = self._copy(spec, plan, say)
            for source, target in plan.started_after_copy(spec):
                lsn = done[source].commit_lsn
                assert lsn is not None
                self.client(target).set_progress(spec, source, lsn)
            # The copies made tables (and sequences) where there were none: decide now.
            sequences = _sequence_plan(spec, self._inspect(spec, members))
            self._set_sequences(spec, members, sequences, say)
        except PgherdError:
            with contextlib.suppress(PgherdError):
                fan_out(members, lambda n: self.client(n).abandon(spec, undo))
            raise
        self._start(spec, members)
        say(f"apply workers started on {', '.join(n.name for n in members)}")

    def _copy(self, spec: MeshSpec, plan: JoinPlan, say: Say) -> dict[str, CopyStatus]:
        """Run every newcomer's copy and follow it; the statuses when all are done."""
        newcomers = [self.config.node(n) for n in plan.newcomers]

        def request(node: NodeConfig) -> CopyRequest:
            return CopyRequest(
                spec=spec,
                sources=plan.copies[node.name],
                merge=plan.merge,
                progress_of=plan.progress_from_reference(spec, node.name),
            )

        fan_out(newcomers, lambda n: self.client(n).start_copy(request(n)))
        said = 0.0
        while True:
            time.sleep(COPY_POLL)
            found = fan_out(newcomers, lambda n: self.client(n).copy_status(spec.name))
            now = time.time()
            failed = [s for s in found if s.state is CopyState.FAILED]
            if failed:
                raise Refused(
                    f"the initial copy into {failed[0].node} failed: {failed[0].error}; "
                    "nothing was kept",
                    failed[0].hint or "fix the cause and run the command again",
                )
            if all(s.state is CopyState.DONE for s in found):
                for status in found:
                    say(mesh_copy.progress_line(status, status.finished_at or now))
                return {s.node: s for s in found}
            if now - said >= PROGRESS_EVERY:
                said = now
                for status in found:
                    if status.state is CopyState.COPYING:
                        say(mesh_copy.progress_line(status, now))

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
        self._start(new, members)
        say(f"policy {new.policy} on {', '.join(n.name for n in members)}; workers restarted")
        return new

    def _nodes_only(self, spec: MeshSpec, what: str) -> None:
        """Refuse ``what`` (the initial copy's paths) for members that are not nodes of
        this pgherd.yaml: not done for clusters yet."""
        found = mesh_members.configs(self.config)
        for name in spec.nodes:
            member = mesh_members.resolve(self.config, name, found)
            if member.cluster or member.config is not self.config:
                raise Refused(
                    f"{what} works between nodes of one pgherd.yaml; {name} is "
                    f"{'a cluster' if member.cluster else 'a node of a peer'}",
                    "make the members' tables hold the same rows (or empty them all) and "
                    "create the mesh with every member at once",
                )

    def _start(self, spec: MeshSpec, members: list[Reached]) -> None:
        """Every node of every member keeps ``spec`` (a cluster member's standbys too: the
        one that becomes its primary runs the workers); the primaries' workers start."""
        every = [(m, n) for m in members for n in m.nodes]
        fan_out(every, lambda mn: MeshClient(mn[1], mn[0].token).start(spec))

    def _inspect(self, spec: MeshSpec, members: list[Reached]) -> list[NodeFacts]:
        found = fan_out(members, lambda n: self.client(n).inspect(spec.dbname, list(spec.tables)))
        # The agent names its node; the mesh knows the member (a cluster's name).
        return [f.model_copy(update={"node": m.name}) for m, f in zip(members, found, strict=True)]

    def _prepare_and_start(
        self, spec: MeshSpec, members: list[Reached], sequences: SequencePlan, say: Say
    ) -> None:
        created = fan_out(members, lambda n: self.client(n).prepare(spec))
        for member, what in zip(members, created, strict=True):
            if what:
                say(f"{member.name}: created {', '.join(what)}")
        self._set_sequences(spec, members, sequences, say)
        self._start(spec, members)
        say(f"apply workers started on {', '.join(n.name for n in members)}")

    def _set_sequences(
        self, spec: MeshSpec, members: list[Reached], sequences: SequencePlan, say: Say
    ) -> None:
        """Each member's own sequence values (model/mesh_sequences.py), before any worker
        runs."""
        todo = [n for n in members if sequences.settings.get(n.name)]
        done = fan_out(
            todo, lambda n: self.client(n).set_sequences(spec, sequences.settings[n.name])
        )
        for member, what in zip(todo, done, strict=True):
            say(f"{member.name}: {'; '.join(what)}")

    def _require_same_rows(self, spec: MeshSpec, members: list[Reached]) -> None:
        """Refuse, naming the first keys that differ, unless every member's tables hold the
        same rows."""
        for table in spec.tables:
            sums = fan_out(
                members,
                lambda n, t=table: self._whole_table(n, spec, t),  # type: ignore[misc]
            )
            if len({(c.rows, c.digest) for c in sums}) > 1:
                counts = ", ".join(f"{n.name} {c.rows}" for n, c in zip(members, sums, strict=True))
                keys = mesh_model.describe_keys(self._first_differences(spec, members, table))
                raise Refused(
                    f"table {table} holds different rows on the nodes (rows: {counts}); "
                    f"first differing keys: {keys}",
                    "copy one node's rows to the others with --initial-copy-from NODE (their "
                    "rows are replaced), or --merge when the nodes' keys differ, or make them "
                    "equal (empty them), then retry",
                )

    def _require_empty(self, spec: MeshSpec, node: Reached, tables: list[str]) -> None:
        for table in tables:
            found = self._whole_table(node, spec, table)
            if found.rows:
                raise Refused(
                    f"{node.name}'s table {table} holds {found.rows} rows while other tables "
                    "of the mesh are missing there",
                    f"empty it, or pass --initial-copy-from to replace {node.name}'s rows",
                )

    def _first_differences(
        self, spec: MeshSpec, members: list[Reached], table: str
    ) -> list[mesh_model.KeyDifference]:
        """The first keys whose rows differ: the first key range whose checksums differ,
        then the keys in it."""
        chunk = 10_000
        bounds, first = self.client(members[0]).table_ranges(spec.dbname, table, chunk)
        others = fan_out(
            members[1:],
            lambda n: self.client(n).table_ranges(spec.dbname, table, chunk, bounds)[1],
        )
        starts: list[str | None] = [None, *bounds]
        ends: list[str | None] = [*bounds, None]
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            if len({(c[i].rows, c[i].digest) for c in [first, *others]}) == 1:
                continue
            rows = fan_out(
                members,
                lambda n, s=start, e=end: self.client(n).key_digests(  # type: ignore[misc]
                    spec.dbname, table, s, e, chunk + 1
                ),
            )
            named = {n.name: r for n, r in zip(members, rows, strict=True)}
            return mesh_model.differing_keys(table, named, DIFFERING_KEYS)
        return []

    def _whole_table(self, node: Reached, spec: MeshSpec, table: str) -> Chunk:
        return self.client(node).table_checksum(spec.dbname, table)

    # ---- status, verify, conflicts, drop --------------------------------------------------

    def status(self, name: str) -> list[dict[str, Any]]:
        """One row per ordered pair: the target's worker and the source's slot."""
        spec = self.find(name)
        members = self.members(spec)

        def one(node: Reached) -> MeshNodeReport | str:
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

    def verify(
        self, name: str, chunk_rows: int
    ) -> tuple[MeshSpec, list[RangeDifference], list[Collision]]:
        """The key ranges whose rows differ between members, and the sequences that could
        hand out the same value on two members."""
        spec = self.find(name)
        members = self.members(spec)
        facts = self._inspect(spec, members)
        collisions = mesh_sequences.collisions({f.node: f.sequences for f in facts})
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
        return spec, differences, collisions

    def conflicts(self, name: str, which: ConflictFilter) -> list[MeshConflict]:
        """Every member's conflicts, newest first, filtered (a table given bare is in
        public)."""
        spec = self.find(name)
        if which.table:
            which = which.model_copy(update={"table": mesh_model.qualify(which.table)})
        lists = fan_out(self.members(spec), lambda n: self.client(n).conflicts(name, which))
        rows = [row for found in lists for row in found]
        rows.sort(key=lambda r: r.at, reverse=True)
        return rows[: which.limit]

    def drop(self, name: str, say: Say = _quiet) -> None:
        spec = self.find(name)
        members = self.members(spec)

        def drop_on(member: Reached) -> str:
            try:
                what = self.client(member).drop(name)
            except Refused:  # a drop run again: this member had forgotten it already
                return f"{member.name}: nothing left to drop"
            return f"{member.name}: dropped {', '.join(what)}"

        for said in fan_out(members, drop_on):
            say(said)
        # A cluster member's standbys forget the spec (the WAL and the slot keeper take
        # the rest there).
        standbys = [(m, n) for m in members for n in m.nodes if n.name != m.agent.name]

        def forget(member: Reached, node: NodeConfig) -> str:
            try:
                MeshClient(node, member.token).drop(name)
            except AgentUnreachable:
                return (
                    f"{node.name}: not reached; it keeps the spec (a standby runs no "
                    f"worker): run `pgherd mesh drop {name}` again once it is back"
                )
            return f"{node.name}: forgot the mesh (a standby of {member.name})"

        for said in fan_out(standbys, lambda mn: forget(*mn)):
            say(said)


def _require_copy_pairs(spec: MeshSpec, plan: JoinPlan) -> None:
    """Every newcomer copies from members it streams from (in a star, from the hub)."""
    pairs = spec.pairs()
    for newcomer, sources in plan.copies.items():
        missing = [s for s in sources if (s, newcomer) not in pairs]
        if missing:
            raise InvalidInput(
                f"in a {spec.topology} mesh {newcomer} does not stream from "
                f"{', '.join(missing)}, so it cannot copy from there",
                "copy from the hub of a star (--initial-copy-from), or use a full mesh",
            )


def _sequence_plan(spec: MeshSpec, facts: Sequence[NodeFacts]) -> SequencePlan:
    """Every member's own sequence values; refused (nothing changed) when a sequence cannot
    be given them."""
    found = mesh_sequences.plan(
        spec.nodes, spec.sequence_step, {f.node: f.sequences for f in facts}
    )
    if found.problems:
        more = f" (and {len(found.problems) - 1} more)" if found.problems[1:] else ""
        raise Refused(
            f"cannot give mesh {spec.name}'s members values of their own: "
            f"{found.problems[0]}{more}",
            mesh_sequences.FIX,
        )
    return found


def _refuse_problems(spec: MeshSpec, problems: list[str]) -> None:
    if not problems:
        return
    more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if problems[1:] else ""
    raise Refused(
        f"cannot set up mesh {spec.name}: {problems[0]}{more}",
        "pgherd's nodes have logical WAL and commit timestamps; give every table a primary "
        "key and the same definition on every node (pgherd ddl), then retry",
    )
