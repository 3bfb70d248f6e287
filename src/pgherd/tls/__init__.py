"""TLS for every connection between the parts of a cluster: a cluster CA and a certificate
per member (certs.py, with the ``cryptography`` package: no openssl program is run), and
the client side's SSL contexts (context.py). Nothing here reads pgherd.yaml or writes
files: pg/tlsfiles.py does, as the PostgreSQL OS user."""
