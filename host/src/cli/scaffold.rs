//! `flowhost plugin new`: writes a plugin project that builds as it is,
//! with unit tests against the SDK's mock host and fixtures for
//! `flowhost plugin test`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The files of a new Rust action project: (path, template).
const RUST_ACTION: [(&str, &str); 5] = [
    ("Cargo.toml", include_str!("scaffold/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("scaffold/lib.rs.tmpl")),
    (
        "fixtures/greets.json",
        include_str!("scaffold/fixture.json.tmpl"),
    ),
    (
        "fixtures/refused.json",
        include_str!("scaffold/refused.json.tmpl"),
    ),
    ("README.md", include_str!("scaffold/README.md.tmpl")),
];

/// The SDK this binary was built with, for projects on this machine.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk")
}

/// Writes the project `name` (a plugin name: lowercase letters, digits and
/// dashes) into `dir/name`; the folder must not exist yet.
pub fn new_plugin(
    name: &str,
    lang: &str,
    world: &str,
    dir: &Path,
    sdk: &Path,
) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    match (lang, world) {
        ("rust", "action") => {}
        ("rust", other) => anyhow::bail!(
            "--world {other}: the scaffold writes actions for now; for a chatbot adapter start from the SDK's example relay_bot.rs"
        ),
        (other, _) => anyhow::bail!(
            "--lang {other}: the scaffold writes Rust plugins for now; a Python or JavaScript action starts from sdk/python/examples/greet or sdk/js/examples/greet (docs/partners.md, Other languages)"
        ),
    }
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the SDK at {} (give --sdk PATH)", sdk.display()))?;
    let project = dir.join(name);
    if project.exists() {
        anyhow::bail!("{} exists already", project.display());
    }
    for (path, template) in RUST_ACTION {
        let text = template
            .replace("{{NAME}}", name)
            .replace("{{CRATE}}", &name.replace('-', "_"))
            .replace("{{TYPE}}", &type_name(name))
            .replace("{{SDK}}", &sdk.display().to_string());
        let path = project.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the project"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(project)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        anyhow::bail!(
            "`{name}` is not a plugin name: lowercase letters, digits and dashes, starting with a letter (such as loyalty-points)"
        );
    }
    Ok(())
}

/// `loyalty-points` -> `LoyaltyPoints`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_become_types() {
        assert_eq!(type_name("loyalty-points"), "LoyaltyPoints");
        assert_eq!(type_name("greet2"), "Greet2");
        for bad in ["", "Loyalty", "-x", "x-", "a_b", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        check_name("loyalty-points").unwrap();
    }

    #[test]
    fn a_project_is_written_once_and_other_languages_are_refused_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let project = new_plugin(
            "loyalty-points",
            "rust",
            "action",
            dir.path(),
            &default_sdk(),
        )
        .unwrap();
        let lib = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
        assert!(lib.contains("struct LoyaltyPoints;") && lib.contains("\"loyalty-points\""));
        assert!(!lib.contains("{{"), "every placeholder is filled");
        let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"loyalty-points\""));
        let again = new_plugin(
            "loyalty-points",
            "rust",
            "action",
            dir.path(),
            &default_sdk(),
        );
        assert!(again.unwrap_err().to_string().contains("exists already"));
        let python = new_plugin("x", "python", "action", dir.path(), &default_sdk());
        assert!(python.unwrap_err().to_string().contains("--lang python"));
    }
}
