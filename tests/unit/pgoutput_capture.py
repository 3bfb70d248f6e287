"""pgoutput messages captured from PostgreSQL 15.

Captured once with psycopg2 from a slot on this table and publication, proto_version 1,
``messages`` on, in binary and in text mode::

    CREATE TYPE mood AS ENUM ('sad', 'happy');
    CREATE TABLE cap (id int PRIMARY KEY, name text, big text, m mood, n numeric);
    ALTER TABLE cap ALTER COLUMN big SET STORAGE EXTERNAL;
    INSERT INTO cap VALUES (1, 'one', repeat('x', 3000), 'happy', 1.5),
                           (2, NULL, 'small', 'sad', NULL);
    UPDATE cap SET name = 'uno' WHERE id = 1;   -- big is an unchanged TOASTed value: 'u'
    UPDATE cap SET id = 3 WHERE id = 2;         -- the key changed: old key 'K'
    DELETE FROM cap WHERE id = 3;
    TRUNCATE cap;
    -- under replication origin 'capo', xact_setup('0/AB', '2026-01-02 03:04:05+00'):
    INSERT INTO cap VALUES (9, 'from origin');
    SELECT pg_logical_emit_message(true, 'pfx', 'hello');

Each entry: (what, hex). ``X3000`` stands for 3000 bytes of "x".
"""

from __future__ import annotations

X3000 = "78" * 3000

RELATION = (
    "52000040137075626c696300636170006400050169640000000017ffffffff006e616d650000000019ffff"
    "ffff006269670000000019ffffffff006d000000400fffffffff006e00000006a4ffffffff"
)
TYPE = "590000400f7075626c6963006d6f6f6400"

BINARY = [
    ("begin", "420000000001533e6000030420bb3a8497000002da"),
    ("type", TYPE),
    ("relation", RELATION),
    (
        "insert 1",
        "49000040134e000562000000040000000162000000036f6e656200000bb8"
        + X3000
        + "62000000056861707079620000000c000200000000000100011388",
    ),
    (
        "insert 2",
        "49000040134e00056200000004000000026e6200000005736d616c6c62000000037361646e",
    ),
    ("commit", "43000000000001533e600000000001533e9000030420bb3a8497"),
    (
        "update toast unchanged",
        "55000040134e00056200000004000000016200000003756e6f7562000000056861707079620000000c00"
        "0200000000000100011388",
    ),
    (
        "update key changed",
        "55000040134b00056200000004000000026e6e6e6e4e00056200000004000000036e6200000005736d61"
        "6c6c62000000037361646e",
    ),
    ("delete", "44000040134b00056200000004000000036e6e6e6e"),
    ("truncate", "54000000010000004013"),
    ("origin begin", "420000000001534ea00002ea5dbb151340000002df"),
    ("origin", "4f00000000000000ab6361706f00"),
    ("message", "4d010000000001534f28706678000000000568656c6c6f"),
]

TEXT = [
    (
        "insert 1",
        "49000040134e000574000000013174000000036f6e657400000bb8"
        + X3000
        + "740000000568617070797400000003312e35",
    ),
    ("insert 2", "49000040134e00057400000001326e7400000005736d616c6c74000000037361646e"),
    (
        "update key changed",
        "55000040134b00057400000001326e6e6e6e4e00057400000001336e7400000005736d616c6c740000"
        "00037361646e",
    ),
]
