//! No code: this package holds the interoperability tests of `flufl-lock` against Python's
//! flufl.lock 10.0.0 (`tests/interop/`). Set up the Python side with
//! `bash testbed/interop/setup.sh`, then run `cargo test -p flufl-lock-interop`.
//! See `testbed/interop/README.md`.
