//! The customer's language, detected from their text among the languages a
//! flow answers in.

use whatlang::{Detector, Lang};

/// Texts shorter than this (in letters) say too little to switch language.
const MIN_LETTERS: usize = 12;

/// Greetings that open a conversation, by language: a first message too
/// short for detection (`Merhaba`, `Hallo`) is read from here, or left to
/// the next message. Normalised (lowercase, accents folded).
const GREETINGS: &[(&str, &[&str])] = &[
    (
        "tr",
        &[
            "merhaba",
            "merhabalar",
            "selam",
            "selamlar",
            "selamun aleykum",
            "iyi gunler",
            "iyi aksamlar",
            "gunaydin",
            "slm",
            "mrb",
        ],
    ),
    (
        "en",
        &[
            "hello",
            "hi",
            "hey",
            "hiya",
            "good morning",
            "good afternoon",
            "good evening",
        ],
    ),
    (
        "de",
        &[
            "hallo",
            "guten tag",
            "guten morgen",
            "guten abend",
            "servus",
            "moin",
            "gruss gott",
        ],
    ),
    ("fr", &["bonjour", "bonsoir", "salut", "coucou"]),
    (
        "es",
        &[
            "hola",
            "buenos dias",
            "buenas tardes",
            "buenas noches",
            "buenas",
        ],
    ),
    ("it", &["ciao", "buongiorno", "buonasera", "salve"]),
    ("pt", &["ola", "oi", "bom dia", "boa tarde", "boa noite"]),
    (
        "nl",
        &[
            "hoi",
            "hallo",
            "goedemorgen",
            "goedemiddag",
            "goedenavond",
            "dag",
        ],
    ),
    (
        "ru",
        &["привет", "здравствуите", "добрыи день", "доброе утро"],
    ),
    ("ar", &["مرحبا", "اهلا", "السلام عليكم"]),
];

/// The language of a greeting among `allowed`: `text` is a greeting of
/// exactly one of them, perhaps followed by one more word (`merhaba
/// arkadaslar`). `None` when it is none, or when several languages share it
/// (`hallo` is German and Dutch) and more than one is allowed.
pub fn greeting(text: &str, allowed: &[String]) -> Option<String> {
    let normalized = super::matcher::normalize(text);
    let words: Vec<&str> = normalized.split(' ').collect();
    let is_greeting = |greeting: &str| {
        let length = greeting.split(' ').count();
        words.len() >= length && words.len() <= length + 1 && words[..length].join(" ") == greeting
    };
    let mut found = GREETINGS
        .iter()
        .filter(|(language, _)| allowed.is_empty() || allowed.iter().any(|a| a == language))
        .filter(|(_, greetings)| greetings.iter().any(|g| is_greeting(g)))
        .map(|(language, _)| language.to_string());
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// The ISO 639-1 code of `text`'s language if detection is confident and
/// the language is one of `allowed` (all languages when `allowed` is empty).
pub fn detect(text: &str, allowed: &[String]) -> Option<String> {
    if text.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return None;
    }
    let candidates: Vec<Lang> = allowed
        .iter()
        .filter_map(|code| to_whatlang(code))
        .collect();
    let detector = if candidates.len() >= 2 {
        Detector::with_allowlist(candidates)
    } else {
        Detector::new()
    };
    let info = detector.detect(text)?;
    if !info.is_reliable() && info.confidence() < 0.5 {
        return None;
    }
    let code = isolang::Language::from_639_3(info.lang().code())?
        .to_639_1()?
        .to_string();
    (allowed.is_empty() || allowed.contains(&code)).then_some(code)
}

fn to_whatlang(code: &str) -> Option<Lang> {
    let three = isolang::Language::from_639_1(code)?.to_639_3();
    Lang::from_code(three)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_among_the_flows_languages() {
        let allowed = vec!["en".to_string(), "tr".to_string()];
        assert_eq!(
            detect("Merhaba, siparişim nerede acaba?", &allowed).as_deref(),
            Some("tr")
        );
        assert_eq!(
            detect("Hello, where is my order please?", &allowed).as_deref(),
            Some("en")
        );
        assert_eq!(detect("ok", &allowed), None, "too short to tell");
    }

    /// Issue 11, item 7: a first message too short to detect.
    #[test]
    fn greetings_tell_the_language_of_a_short_first_message() {
        let allowed = vec!["en".to_string(), "tr".to_string()];
        assert_eq!(greeting("Merhaba", &allowed).as_deref(), Some("tr"));
        assert_eq!(greeting("Selam!", &allowed).as_deref(), Some("tr"));
        assert_eq!(
            greeting("merhaba arkadaşlar", &allowed).as_deref(),
            Some("tr")
        );
        assert_eq!(greeting("Hi", &allowed).as_deref(), Some("en"));
        let german = ["de".to_string(), "en".to_string()];
        assert_eq!(greeting("Hallo", &german).as_deref(), Some("de"));
        let dutch_too = ["de".to_string(), "nl".to_string()];
        assert_eq!(
            greeting("Hallo", &dutch_too),
            None,
            "shared: left to the next message"
        );
        assert_eq!(
            greeting("Bonjour", &allowed),
            None,
            "not a language of the flow"
        );
        assert_eq!(greeting("tamam", &allowed), None, "not a greeting");
        assert_eq!(
            greeting("merhaba siparişim nerede", &allowed),
            None,
            "more than a greeting"
        );
        assert_eq!(
            detect(
                "Bonjour, où est ma commande s'il vous plaît ?",
                &["fr".to_string(), "en".to_string()]
            )
            .as_deref(),
            Some("fr")
        );
    }
}
