//! The customer's language, detected from their text among the languages a
//! flow answers in.

use whatlang::{Detector, Lang};

/// Texts shorter than this (in letters) say too little to switch language.
const MIN_LETTERS: usize = 12;

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
