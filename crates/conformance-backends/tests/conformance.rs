//! The whole suite against one backend, one trial per case (`backend/port/case`), so
//! `cargo test -p credo-conformance-backends --test conformance -- users/` runs just the
//! matching cases and nextest can pick one. `CREDO_CONFORMANCE_BACKEND` names the backend
//! (`inmemory` when unset, so `cargo test` always runs the embedded default); cases that do
//! not apply to it are not listed. A named backend whose server cannot be reached fails every
//! case. Cases run one at a time unless `--test-threads` says otherwise: several of them time
//! what a server does.
//!
//! `cargo xtask mutants` runs this test as the verdict on each mutant of an adapter;
//! `cargo xtask conformance` runs the whole matrix.

fn main() -> std::process::ExitCode {
    credo_conformance_backends::trials::main()
}
