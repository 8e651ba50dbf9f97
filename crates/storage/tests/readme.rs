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
