"""Test hosts: agents started the way a service manager starts them, network namespaces
that stand for servers (their own address, a link to a shared bridge, faults with ``ip``,
``tc`` and ``iptables``), a three-member etcd with one member per host. Shared by the
multi-host tests (tests/e2e/test_deploy.py) and the fault suites that follow it."""
