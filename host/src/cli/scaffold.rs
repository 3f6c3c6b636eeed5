//! `flowhost plugin new`: writes a plugin project (Rust, Python or
//! JavaScript; an action or a chatbot adapter) that builds as it is, with
//! unit tests against the SDK's mock host and fixtures for `flowhost plugin
//! test`. The templates are in `scaffold/`: fixtures by world, the rest by
//! language and world.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A file of a project: its path and its template.
type Template = (&'static str, &'static str);

const ACTION_FIXTURES: [Template; 2] = [
    (
        "fixtures/greets.json",
        include_str!("scaffold/action/fixtures/greets.json"),
    ),
    (
        "fixtures/refused.json",
        include_str!("scaffold/action/fixtures/refused.json"),
    ),
];

const CHATBOT_FIXTURES: [Template; 4] = [
    (
        "fixtures/answers.json",
        include_str!("scaffold/chatbot/fixtures/answers.json"),
    ),
    (
        "fixtures/handoff.json",
        include_str!("scaffold/chatbot/fixtures/handoff.json"),
    ),
    (
        "fixtures/later.json",
        include_str!("scaffold/chatbot/fixtures/later.json"),
    ),
    (
        "fixtures/unavailable.json",
        include_str!("scaffold/chatbot/fixtures/unavailable.json"),
    ),
];

const RUST: [Template; 3] = [
    ("Cargo.toml", include_str!("scaffold/rust/Cargo.toml")),
    (".gitignore", include_str!("scaffold/rust/gitignore")),
    ("README.md", include_str!("scaffold/rust/README.md")),
];
const RUST_ACTION: [Template; 1] = [("src/lib.rs", include_str!("scaffold/rust/action/lib.rs"))];
const RUST_CHATBOT: [Template; 1] = [("src/lib.rs", include_str!("scaffold/rust/chatbot/lib.rs"))];

const PYTHON: [Template; 4] = [
    (".gitignore", include_str!("scaffold/python/gitignore")),
    ("build", include_str!("scaffold/python/build")),
    ("test", include_str!("scaffold/python/test")),
    ("README.md", include_str!("scaffold/python/README.md")),
];
const PYTHON_ACTION: [Template; 2] = [
    ("app.py", include_str!("scaffold/python/action/app.py")),
    (
        "test_app.py",
        include_str!("scaffold/python/action/test_app.py"),
    ),
];
const PYTHON_CHATBOT: [Template; 2] = [
    ("app.py", include_str!("scaffold/python/chatbot/app.py")),
    (
        "test_app.py",
        include_str!("scaffold/python/chatbot/test_app.py"),
    ),
];

const JS: [Template; 3] = [
    (".gitignore", include_str!("scaffold/js/gitignore")),
    ("package.json", include_str!("scaffold/js/package.json")),
    ("README.md", include_str!("scaffold/js/README.md")),
];
const JS_ACTION: [Template; 2] = [
    ("app.js", include_str!("scaffold/js/action/app.js")),
    (
        "app.test.js",
        include_str!("scaffold/js/action/app.test.js"),
    ),
];
const JS_CHATBOT: [Template; 2] = [
    ("app.js", include_str!("scaffold/js/chatbot/app.js")),
    (
        "app.test.js",
        include_str!("scaffold/js/chatbot/app.test.js"),
    ),
];

/// The scripts a project runs as `./build` and `./test`.
const EXECUTABLE: [&str; 2] = ["build", "test"];

/// The SDK this binary was built with, for projects on this machine.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk")
}

/// Writes the project `name` (a plugin name: lowercase letters, digits and
/// dashes) in `lang` (`rust`, `python` or `js`) exporting `world` (`action`
/// or `chatbot`) into `dir/name`; the folder must not exist yet.
pub fn new_plugin(
    name: &str,
    lang: &str,
    world: &str,
    dir: &Path,
    sdk: &Path,
) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let files = templates(lang, world)?;
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the SDK at {} (give --sdk PATH)", sdk.display()))?;
    let project = dir.join(name);
    if project.exists() {
        anyhow::bail!("{} exists already", project.display());
    }
    let (kind, flow_use) = match world {
        "action" => ("action", ACTION_USE),
        _ => ("chatbot adapter", CHATBOT_USE),
    };
    for (path, template) in files {
        let text = template
            .replace("{{FLOW_USE}}", flow_use)
            .replace("{{NAME}}", name)
            .replace("{{CRATE}}", &name.replace('-', "_"))
            .replace("{{TYPE}}", &type_name(name))
            .replace("{{WORLD}}", world)
            .replace("{{KIND}}", kind)
            .replace("{{SDK}}", &sdk.display().to_string());
        let path = project.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the project"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        if EXECUTABLE.iter().any(|script| path.ends_with(script)) {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(project)
}

/// What the README says about using the plugin in a flow.
const ACTION_USE: &str = "Use it in a decision of a flow as `- action: {{NAME}}` with `config: { greeting: \"Hello\" }`.";
const CHATBOT_USE: &str = "Use it in a flow as a chatbot's adapter: `chatbots: { helper: { adapter: {{NAME}}, url: https://your-bot.example/talk, fallback: { queue: support } } }`.";

/// The files of a project in `lang` exporting `world`.
fn templates(lang: &str, world: &str) -> anyhow::Result<Vec<Template>> {
    let (common, own): (&[Template], &[Template]) = match (lang, world) {
        ("rust", "action") => (&RUST, &RUST_ACTION),
        ("rust", "chatbot") => (&RUST, &RUST_CHATBOT),
        ("python", "action") => (&PYTHON, &PYTHON_ACTION),
        ("python", "chatbot") => (&PYTHON, &PYTHON_CHATBOT),
        ("js", "action") => (&JS, &JS_ACTION),
        ("js", "chatbot") => (&JS, &JS_CHATBOT),
        ("rust" | "python" | "js", other) => {
            anyhow::bail!(
                "--world {other}: a plugin project exports the action or the chatbot world"
            )
        }
        (other, _) => {
            anyhow::bail!("--lang {other}: the scaffold writes rust, python or js projects")
        }
    };
    let fixtures: &[Template] = if world == "action" {
        &ACTION_FIXTURES
    } else {
        &CHATBOT_FIXTURES
    };
    Ok([common, own, fixtures].concat())
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
    fn a_project_is_written_once_and_unknown_languages_and_worlds_are_refused() {
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
        let go = new_plugin("x", "go", "action", dir.path(), &default_sdk());
        assert!(go.unwrap_err().to_string().contains("--lang go"));
        let world = new_plugin("x", "js", "translator", dir.path(), &default_sdk());
        assert!(
            world
                .unwrap_err()
                .to_string()
                .contains("--world translator")
        );
    }

    #[test]
    fn every_language_and_world_is_written_with_every_placeholder_filled() {
        let dir = tempfile::tempdir().unwrap();
        for lang in ["rust", "python", "js"] {
            for world in ["action", "chatbot"] {
                let name = format!("{lang}-{world}");
                let project = new_plugin(&name, lang, world, dir.path(), &default_sdk()).unwrap();
                for (path, _) in templates(lang, world).unwrap() {
                    let text = std::fs::read_to_string(project.join(path)).unwrap();
                    assert!(!text.contains("{{"), "{name}/{path} has a placeholder left");
                }
            }
        }
        let build = dir.path().join("python-chatbot/build");
        let text = std::fs::read_to_string(&build).unwrap();
        assert!(text.contains("-w chatbot"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            build.metadata().unwrap().permissions().mode() & 0o111,
            0o111
        );
    }
}
