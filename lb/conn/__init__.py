"""The connection table's Python side: `ref` is the readable twin of the C table (csched/src/conn.c)."""
