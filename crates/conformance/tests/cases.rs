//! The suite on the embedded in-memory backend, one trial per case (`inmemory/port/case`):
//! `cargo test -p credo-conformance -- sessions/` runs just the matching cases. The other
//! backends need their drivers, which this crate does not link: their trials are
//! `CREDO_CONFORMANCE_BACKEND=postgres cargo test -p credo-conformance-backends --test
//! conformance -- <filter>`, the same function with every backend compiled in.

fn main() -> std::process::ExitCode {
    credo_conformance_backends::trials::main()
}
