"""Storage backends behind the ports of gateway/ports.py.

- memory: reference semantics, fault injection (tests, embedding).
- sqlite: the embedded default, one file `<data_dir>/jitgate.db` owned by one process
  (`open_sqlite`, plus `verify_sqlite` / `read_sqlite_audit` for the CLI).
- postgres: several replicas on one database (`open_postgres`; needs the `postgres` extra).
- signer: the Ed25519 key that signs audit checkpoints.

Submodules are imported explicitly so the optional drivers are only loaded when used.
"""

__all__: list[str] = []
