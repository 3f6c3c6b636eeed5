//! Matching a customer's typed answer against targets: regular expressions
//! and "similar words", tolerant of case, accents and small typos.

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

/// A comma-separated list of words or phrases, normalised once.
#[derive(Clone, Debug, PartialEq)]
pub struct WordList {
    phrases: Vec<Vec<String>>,
}

impl WordList {
    pub fn parse(list: &str) -> WordList {
        let phrases = list
            .split(',')
            .map(normalize)
            .filter(|p| !p.is_empty())
            .map(|p| p.split(' ').map(String::from).collect())
            .collect();
        WordList { phrases }
    }

    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Whether `text` contains one of the phrases, word by word, each word
    /// allowed a small typo.
    pub fn matches(&self, text: &str) -> bool {
        let normalized = normalize(text);
        let words: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
        self.phrases.iter().any(|phrase| {
            phrase.len() <= words.len()
                && words
                    .windows(phrase.len())
                    .any(|window| window.iter().zip(phrase).all(|(w, p)| similar(w, p)))
        })
    }
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
        let list = WordList::parse("agent, human, customer service, temsilci");
        assert!(list.matches("I want an AGENT please"));
        assert!(list.matches("can i talk to a humna"), "transposition");
        assert!(list.matches("Customer servise!"), "phrase with a typo");
        assert!(list.matches("Temsilcı istiyorum"), "Turkish dotless i");
        assert!(!list.matches("my order is late"));
        assert!(!list.matches("customer"), "a phrase needs all its words");
        // Short words must match exactly: "man" is not "can".
        assert!(!WordList::parse("man").matches("can"));
    }
}
