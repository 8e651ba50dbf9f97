//! The README shows the quick start as it is: its first `rust` block is the body of
//! `examples/quickstart.rs` (which CI compiles), so the two never drift apart.

use std::path::Path;

#[test]
fn the_readme_quick_start_is_the_example_that_compiles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example =
        std::fs::read_to_string(root.join("crates/storage/examples/quickstart.rs")).unwrap();
    let shown: String = readme
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README has a rust block")
        .to_string();
    // The example's module docs are for its readers in the repository, not the README.
    let body = &example[example
        .find("use credo_storage")
        .expect("the example uses the facade")..];
    assert_eq!(
        shown, body,
        "README quick start differs from examples/quickstart.rs"
    );
}

/// The README's "What works today" table says `yes` exactly where an adapter's
/// `CAPABILITIES` declares the port, so the table cannot drift from what the harness and the
/// facade's checks read.
#[cfg(all(
    feature = "inmemory",
    feature = "postgres",
    feature = "redis",
    feature = "kafka"
))]
#[test]
fn the_readme_capability_table_is_what_the_adapters_declare() {
    use credo_storage::capability::{Capabilities, Port};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let columns: [Capabilities; 4] = [
        credo_storage::inmemory::CAPABILITIES,
        credo_storage::postgres::CAPABILITIES,
        credo_storage::redis::CAPABILITIES,
        credo_storage::kafka::CAPABILITIES,
    ];
    let rows = [
        ("UserStore", Port::Users),
        ("SessionStore", Port::Sessions),
        ("ConsentStore", Port::Consents),
        ("AuditRecorder + AuditLog", Port::Audit),
        ("RateLimitStore", Port::RateLimits),
        ("Outbox", Port::Outbox),
        ("audit pipeline", Port::Pipeline),
        ("JobLeases (maintenance)", Port::Leases),
    ];
    let mut checked = 0;
    for line in readme.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some((_, port)) = rows.iter().find(|(name, _)| *name == cells[0]) else {
            continue;
        };
        assert_eq!(cells.len(), 5, "{line}");
        for (caps, cell) in columns.iter().zip(&cells[1..]) {
            assert_eq!(
                cell.starts_with("yes"),
                caps.serves(*port),
                "README says {cell:?} for {port} on {}",
                caps.backend()
            );
        }
        checked += 1;
    }
    assert_eq!(checked, rows.len(), "every port has its row in the README");
    assert_eq!(rows.len(), Port::ALL.len(), "a port is missing from `rows`");
}
