//! Plain text as character ids. The vocabulary is the sorted set of characters of the whole
//! text (75 for Pride and Prejudice), so ids do not depend on the split.

use std::path::Path;

use super::read_gz;
use crate::{ModelError, Result};

pub struct CharText {
    pub vocab: Vec<char>,
    pub ids: Vec<u32>,
}

impl CharText {
    pub fn from_text(text: &str) -> CharText {
        let vocab: Vec<char> = text.chars().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let ids = text.chars().map(|c| vocab.binary_search(&c).unwrap() as u32).collect();
        CharText { vocab, ids }
    }

    pub fn read(path: &Path) -> Result<CharText> {
        let bytes = read_gz(path)?;
        let text = String::from_utf8(bytes).map_err(|_| ModelError::bad_data(path, "not UTF-8 text"))?;
        if text.chars().count() < 10_000 {
            return Err(ModelError::bad_data(path, "text too short for the language-model workload"));
        }
        Ok(CharText::from_text(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_text_has_the_documented_shape() {
        let p = crate::data::DataConfig::shipped_only().shipped.join("austen/pride-and-prejudice.txt.gz");
        let t = CharText::read(&p).unwrap();
        assert_eq!(t.ids.len(), 684_768);
        assert_eq!(t.vocab.len(), 75);
    }

    #[test]
    fn ids_round_trip() {
        let t = CharText::from_text("abca");
        assert_eq!(t.ids, vec![0, 1, 2, 0]);
    }
}
