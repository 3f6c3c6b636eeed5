//! Matching a customer's typed answer against targets: regular expressions
//! and "similar words", tolerant of case, accents and small typos.

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lowercases, folds accents (`é` -> `e`, Turkish `ı` -> `i`) and keeps
/// letters and digits, words separated by single spaces.
pub fn normalize(text: &str) -> String {
    let lowered: String = text
        .chars()
        .map(|c| match c {
            'ı' | 'İ' => 'i',
            'ß' => 's',
            other => other,
        })
        .flat_map(char::to_lowercase)
        .collect();
    let folded: String = lowered.nfd().filter(|c| !is_combining_mark(*c)).collect();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Lowercases (Turkish `İ`/`I` as Turkish readers expect them nowhere
/// else), keeping letters and digits: the words of `text` before accents are
/// folded, so a stemmer sees them as written.
fn lowercase_words(text: &str) -> Vec<String> {
    text.chars()
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// A word as matching compares it: folded, and its stem folded.
#[derive(Clone, Debug, PartialEq)]
struct Word {
    folded: String,
    stem: String,
}

/// Shortest stem the prefix rule accepts, for languages without a stemmer
/// (`destek` matches `destekle`, `ok` does not match `okay`).
const MIN_PREFIX_STEM: usize = 5;

/// A comma-separated list of words or phrases in one language, normalised
/// and stemmed once.
#[derive(Clone, Debug, PartialEq)]
pub struct WordList {
    phrases: Vec<Vec<Word>>,
    /// Snowball's stemmer for the list's language, if it has one.
    stemmer: Option<Algorithm>,
}

impl WordList {
    /// `language` (ISO 639-1) picks the stemmer.
    pub fn parse(list: &str, language: &str) -> WordList {
        let stemmer = stemmer_for(language);
        let phrases = list
            .split(',')
            .map(|phrase| words(phrase, stemmer))
            .filter(|p| !p.is_empty())
            .collect();
        WordList { phrases, stemmer }
    }

    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Whether `text` contains one of the phrases, word by word: each word
    /// equal, an inflected form of it (same stem, or for a language without
    /// a stemmer a longer word starting with it), or with a small typo.
    pub fn matches(&self, text: &str) -> bool {
        let words = words(text, self.stemmer);
        self.phrases.iter().any(|phrase| {
            phrase.len() <= words.len()
                && words
                    .windows(phrase.len())
                    .any(|window| window.iter().zip(phrase).all(|(w, p)| self.same(w, p)))
        })
    }

    fn same(&self, word: &Word, expected: &Word) -> bool {
        if similar(&word.folded, &expected.folded) {
            return true;
        }
        match self.stemmer {
            Some(_) => word.stem == expected.stem || similar(&word.stem, &expected.stem),
            None => {
                expected.folded.chars().count() >= MIN_PREFIX_STEM
                    && word.folded.starts_with(&expected.folded)
            }
        }
    }
}

fn words(text: &str, stemmer: Option<Algorithm>) -> Vec<Word> {
    let stemmer = stemmer.map(Stemmer::create);
    lowercase_words(text)
        .iter()
        .map(|word| Word {
            folded: normalize(word),
            stem: match &stemmer {
                Some(stemmer) => normalize(&stemmer.stem(word)),
                None => normalize(word),
            },
        })
        .filter(|w| !w.folded.is_empty())
        .collect()
}

/// Snowball's stemmer for an ISO 639-1 language (or `tr-TR`), if any.
fn stemmer_for(language: &str) -> Option<Algorithm> {
    let primary = language.split(['-', '_']).next().unwrap_or(language);
    Some(match primary {
        "ar" => Algorithm::Arabic,
        "da" => Algorithm::Danish,
        "nl" => Algorithm::Dutch,
        "en" => Algorithm::English,
        "fi" => Algorithm::Finnish,
        "fr" => Algorithm::French,
        "de" => Algorithm::German,
        "el" => Algorithm::Greek,
        "hu" => Algorithm::Hungarian,
        "it" => Algorithm::Italian,
        "no" | "nb" | "nn" => Algorithm::Norwegian,
        "pt" => Algorithm::Portuguese,
        "ro" => Algorithm::Romanian,
        "ru" => Algorithm::Russian,
        "es" => Algorithm::Spanish,
        "sv" => Algorithm::Swedish,
        "ta" => Algorithm::Tamil,
        "tr" => Algorithm::Turkish,
        _ => return None,
    })
}

/// Equal, or within a small edit distance for longer words: none up to 3
/// characters, one up to 7, two beyond.
pub fn similar(word: &str, expected: &str) -> bool {
    if word == expected {
        return true;
    }
    let len = word.chars().count().max(expected.chars().count());
    let allowed = match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    };
    allowed > 0 && strsim::damerau_levenshtein(word, expected) <= allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizing_folds_case_accents_and_punctuation() {
        assert_eq!(
            normalize("  Çok GÜZEL, teşekkürler!! "),
            "cok guzel tesekkurler"
        );
        assert_eq!(normalize("İstanbul ıslak"), "istanbul islak");
        assert_eq!(normalize("Crème brûlée?"), "creme brulee");
    }

    #[test]
    fn similar_words_tolerate_a_small_typo() {
        let list = WordList::parse("agent, human, customer service, temsilci", "en");
        assert!(list.matches("I want an AGENT please"));
        assert!(list.matches("can i talk to a humna"), "transposition");
        assert!(list.matches("Customer servise!"), "phrase with a typo");
        assert!(list.matches("Temsilcı istiyorum"), "Turkish dotless i");
        assert!(!list.matches("my order is late"));
        assert!(!list.matches("customer"), "a phrase needs all its words");
        // Short words must match exactly: "man" is not "can".
        assert!(!WordList::parse("man", "en").matches("can"));
    }

    /// Issue 11, item 7: inflected forms match, by Snowball's stemmer where
    /// the language has one, else by a prefix of at least five letters.
    #[test]
    fn similar_words_match_inflected_forms() {
        let turkish = WordList::parse("temsilci, insan, yetkili, destek", "tr");
        assert!(turkish.matches("temsilciyle görüşmek istiyorum"));
        assert!(turkish.matches("Temsilcinize bağlanmak istiyorum"));
        assert!(turkish.matches("bir yetkiliyle konuşabilir miyim"));
        assert!(
            turkish.matches("desteğe ihtiyacım var"),
            "ğ softened before a vowel"
        );
        assert!(!turkish.matches("siparişim nerede"));
        let english = WordList::parse("agent, refund", "en");
        assert!(english.matches("can I talk to one of your agents?"));
        assert!(english.matches("I want my money refunded"));
        assert!(!english.matches("my order is late"));
        // No Snowball stemmer for Polish: a prefix of five letters or more.
        let polish = WordList::parse("konsultant, ok", "pl");
        assert!(polish.matches("chcę rozmawiać z konsultantem"));
        assert!(!polish.matches("okay"), "a short word matches only whole");
    }
}
