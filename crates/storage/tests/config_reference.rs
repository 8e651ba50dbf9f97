//! `docs/configuration.md` holds the reference generated from the declarations; this fails when
//! it is stale. `CREDO_BLESS=1 cargo test -p credo-storage --all-features --test
//! config_reference` rewrites it.

use credo_storage::config::reference;

#[test]
fn the_configuration_reference_is_generated_from_the_declarations() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
    let document = std::fs::read_to_string(path).unwrap();
    let fresh = reference::regenerate(&document).unwrap_or_else(|| {
        panic!(
            "docs/configuration.md lacks the markers {:?} and {:?}",
            reference::BEGIN,
            reference::END
        )
    });
    if std::env::var_os("CREDO_BLESS").is_some() {
        std::fs::write(path, &fresh).unwrap();
        return;
    }
    assert!(
        fresh == document,
        "docs/configuration.md is stale: run `CREDO_BLESS=1 cargo test -p credo-storage \
         --all-features --test config_reference` and commit the result"
    );
}
