//! Every command the app registers is granted to its window, by name: a command missing from
//! `build.rs` or from `capabilities/default.json` is refused at run time ("not allowed"), which
//! only a test in the real window would otherwise notice.

use std::collections::BTreeSet;
use std::path::Path;

fn source(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reads {}: {e}", path.display()))
}

/// The text between `open` and the next `close`.
fn names_in<'t>(text: &'t str, open: &str, close: &str) -> &'t str {
    let start = text.find(open).expect("the list opens") + open.len();
    let end = text[start..].find(close).expect("the list closes") + start;
    &text[start..end]
}

#[test]
fn every_registered_command_has_a_permission_and_the_window_is_granted_each() {
    let lib = source("src/lib.rs");
    let registered: BTreeSet<&str> = names_in(&lib, "generate_handler![", "]")
        .split(',')
        .filter_map(|entry| entry.trim().strip_prefix("commands::"))
        .collect();
    assert!(registered.len() > 10, "{registered:?}");

    let build = source("build.rs");
    let permitted: BTreeSet<&str> = names_in(&build, "const COMMANDS: &[&str] = &[", "];")
        .split(',')
        .map(|entry| entry.trim().trim_matches('"'))
        .filter(|name| !name.is_empty())
        .collect();
    assert_eq!(
        permitted, registered,
        "build.rs COMMANDS and the registered commands"
    );

    let capability: serde_json::Value =
        serde_json::from_str(&source("capabilities/default.json")).expect("JSON");
    let granted: BTreeSet<String> = capability["permissions"]
        .as_array()
        .expect("a list of permissions")
        .iter()
        .filter_map(|permission| permission.as_str()?.strip_prefix("allow-"))
        .map(|name| name.replace('-', "_"))
        .collect();
    let registered: BTreeSet<String> = registered.iter().map(|name| name.to_string()).collect();
    assert_eq!(
        granted, registered,
        "capabilities/default.json and the registered commands"
    );
}
