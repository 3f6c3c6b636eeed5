//! `phrase-translator`: an offline translator from a phrase table. It shows
//! how a queue's `translation_provider` works without any outside service:
//! English and Turkish contact-center phrases are built in, and a queue's
//! configuration can add phrases and language pairs of its own. Real
//! translation providers are partner plugins of the same `translator`
//! world that call an HTTP API.
//!
//! A whole message is looked up first; otherwise the longest known phrases
//! (up to four words) are replaced from left to right and other words kept,
//! so names, numbers and order ids pass through unchanged.

use std::collections::BTreeMap;

use flowhost_sdk::translator::{TranslateError, Translation};
use flowhost_sdk::{PluginInfo, Translator, plugin_info};
use serde::Deserialize;
use serde_json::json;

mod table;

/// The longest phrase, in words, the table is searched for.
const LONGEST_PHRASE: usize = 4;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Extra phrases by pair: `{"en-de": {"hello": "hallo"}}`; they win
    /// over the built-in table.
    #[serde(default)]
    phrases: BTreeMap<String, BTreeMap<String, String>>,
}

struct PhraseTranslator;

impl Translator for PhraseTranslator {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "phrase-translator",
            env!("CARGO_PKG_VERSION"),
            "Translates from a phrase table, offline (English and Turkish built in).",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "phrases": {
                        "type": "object",
                        "description": "Extra phrases by language pair, such as {\"en-de\": {\"hello\": \"hallo\"}}",
                        "propertyNames": {"pattern": "^[a-z]{2}-[a-z]{2}$"},
                        "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                }
            }),
            &[],
        )
    }

    fn translate(
        config: Config,
        text: &str,
        source: Option<&str>,
        target: &str,
    ) -> Result<Translation, TranslateError> {
        let table = Table::new(config);
        let source = match source {
            Some(source) => source.to_string(),
            None => table.detect(text, target).ok_or_else(|| {
                TranslateError::UnsupportedLanguages(format!(
                    "cannot tell which language {text:?} is in"
                ))
            })?,
        };
        if source == target {
            return Ok(Translation {
                text: text.to_string(),
                source_language: Some(source),
            });
        }
        let pair = table.pair(&source, target).ok_or_else(|| {
            TranslateError::UnsupportedLanguages(format!("no phrases from {source} to {target}"))
        })?;
        Ok(Translation {
            text: translate_with(pair, text),
            source_language: Some(source),
        })
    }
}

flowhost_sdk::export_translator!(PhraseTranslator);

/// The built-in phrases plus the configuration's, by pair.
struct Table {
    pairs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Table {
    fn new(config: Config) -> Self {
        let mut pairs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (from, to, phrases) in [("en", "tr", table::EN_TR)] {
            for (a, b) in phrases {
                pairs
                    .entry(format!("{from}-{to}"))
                    .or_default()
                    .insert(normal(a), b.to_string());
                pairs
                    .entry(format!("{to}-{from}"))
                    .or_default()
                    .insert(normal(b), a.to_string());
            }
        }
        for (pair, phrases) in config.phrases {
            let entries = pairs.entry(pair).or_default();
            for (from, to) in phrases {
                entries.insert(normal(&from), to);
            }
        }
        Table { pairs }
    }

    fn pair(&self, source: &str, target: &str) -> Option<&BTreeMap<String, String>> {
        self.pairs.get(&format!("{source}-{target}"))
    }

    /// The language whose phrases into `target` cover most of the words.
    fn detect(&self, text: &str, target: &str) -> Option<String> {
        let words = words(text);
        let mut best: Option<(usize, String)> = None;
        for (pair, phrases) in &self.pairs {
            let Some(source) = pair.strip_suffix(&format!("-{target}")) else {
                continue;
            };
            let hits = words.iter().filter(|w| phrases.contains_key(*w)).count();
            if hits > 0 && best.as_ref().is_none_or(|(most, _)| hits > *most) {
                best = Some((hits, source.to_string()));
            }
        }
        best.map(|(_, source)| source)
    }
}

/// Lower case, without the punctuation around words.
fn normal(text: &str) -> String {
    words(text).join(" ")
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The whole text if it is a known phrase (its end punctuation kept);
/// else the longest known phrases replaced, left to right.
fn translate_with(phrases: &BTreeMap<String, String>, text: &str) -> String {
    let ending: String = text
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| matches!(c, '?' | '!' | '.'))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if let Some(whole) = phrases.get(&normal(text)) {
        return format!("{}{ending}", whole.trim_end_matches(['?', '!', '.']));
    }
    let raw: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let found = (1..=LONGEST_PHRASE.min(raw.len() - i)).rev().find_map(|n| {
            phrases
                .get(&normal(&raw[i..i + n].join(" ")))
                .map(|t| (n, t.clone()))
        });
        match found {
            Some((n, translated)) => {
                out.push(translated);
                i += n;
            }
            None => {
                out.push(raw[i].to_string());
                i += 1;
            }
        }
    }
    out.join(" ")
}
