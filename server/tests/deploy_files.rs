//! The operator-facing files stay true to the code: `deploy/hydrant.toml.example` is
//! valid, shows every configuration key (commented-out defaults included), and the
//! README's configuration reference documents every key.
//!
//! The set of keys comes from the config parser itself: `deny_unknown_fields` makes
//! serde list every field a table accepts when it meets an unknown one, so a key added
//! to `config.rs` without documentation fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hydrant_server::config::Config;

fn repo_file(rel: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, text)
}

/// The fields serde expects where it met `zzz_unknown`, from its error message:
/// "expected `a`", "expected `a` or `b`" or "expected one of `a`, `b`, ...".
fn expected_fields(toml: &str) -> Option<Vec<String>> {
    let err = Config::parse(toml, Path::new("<probe>")).err()?.to_string();
    let list = err.split("unknown field `zzz_unknown`, expected ").nth(1)?;
    let list = list.lines().next()?;
    Some(
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// Every key the parser accepts, as `key` (top level) or `section.key`.
fn config_keys() -> BTreeSet<String> {
    let top = expected_fields("zzz_unknown = 1\n").expect("top-level fields listed");
    let mut keys = BTreeSet::new();
    for name in top {
        match expected_fields(&format!("[{name}]\nzzz_unknown = 1\n")) {
            Some(fields) => {
                for f in fields {
                    keys.insert(format!("{name}.{f}"));
                }
            }
            // Not a table: `[domain]` is a type error, not an unknown field.
            None => {
                keys.insert(name);
            }
        }
    }
    assert!(keys.len() > 50, "probing found too few keys: {keys:?}");
    keys
}

/// Keys set in a parsed TOML document, as `key` / `section.key` (inline tables such as
/// `[s2s] overrides` count as one key).
fn document_keys(text: &str) -> BTreeSet<String> {
    let doc: toml::Table = text.parse().expect("TOML");
    let mut keys = BTreeSet::new();
    for (k, v) in doc {
        match v {
            toml::Value::Table(t) => {
                for sub in t.keys() {
                    keys.insert(format!("{k}.{sub}"));
                }
            }
            _ => {
                keys.insert(k);
            }
        }
    }
    keys
}

/// The example with every `# key = value` line switched on.
fn uncommented(example: &str) -> String {
    example
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn example_config_is_valid_as_shipped_and_with_every_default_switched_on() {
    let (path, text) = repo_file("deploy/hydrant.toml.example");
    let cfg = Config::parse(&text, &path).expect("the example parses as shipped");
    assert_eq!(cfg.domain.0, "example.org");
    let all = uncommented(&text);
    assert_ne!(all, text, "the example has commented-out keys");
    Config::parse(&all, &path).expect("the example parses with every key switched on");
}

#[test]
fn example_config_shows_every_key() {
    let (_, text) = repo_file("deploy/hydrant.toml.example");
    let shown = document_keys(&uncommented(&text));
    let known = config_keys();
    let missing: Vec<_> = known.difference(&shown).collect();
    assert!(
        missing.is_empty(),
        "keys the parser accepts but deploy/hydrant.toml.example does not show: {missing:?}"
    );
}

#[test]
fn readme_documents_every_key() {
    let (_, readme) = repo_file("README.md");
    let section = readme
        .split("## Configuration reference")
        .nth(1)
        .expect("README has a configuration reference")
        .split("\n## ")
        .next()
        .unwrap();
    let mut documented = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = row.split(" | ").next().unwrap().trim_start_matches("| ");
        // "`[c2s] listen`", "`[tls] cert`, `key`", "`[s2s.overrides]`", "`domain`"
        let names: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        let mut table = None;
        for name in names {
            let name = match name.strip_prefix('[') {
                Some(rest) => {
                    let (t, key) = rest.split_once(']').unwrap();
                    match t.split_once('.') {
                        // `[s2s.overrides]`: a table of its own, one key of `[s2s]`.
                        Some((parent, child)) => {
                            documented.insert(format!("{parent}.{child}"));
                            continue;
                        }
                        None => table = Some(t.to_string()),
                    }
                    key.trim()
                }
                None => name,
            };
            documented.insert(match &table {
                Some(t) => format!("{t}.{name}"),
                None => name.to_string(),
            });
        }
    }
    let known = config_keys();
    let missing: Vec<_> = known.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "keys missing from README's configuration reference: {missing:?}"
    );
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "README documents keys the parser does not accept: {unknown:?}"
    );
}
