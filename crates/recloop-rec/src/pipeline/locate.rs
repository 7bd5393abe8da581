//! Find the line of a key in TOML text, so semantic errors can point at it.

use toml::de::{DeTable, DeValue};

/// One step of a path into a TOML document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// A table key.
    Key(&'a str),
    /// An array index (also for arrays of tables such as `[[models]]`).
    Index(usize),
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Line (1-based) where the entry at `path` is written: the key itself for a table entry, the
/// element for an array index. Falls back to the deepest existing ancestor; `None` when the text
/// does not parse or nothing on the path exists.
pub fn line_of(text: &str, path: &[Seg<'_>]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut best: Option<usize> = None;
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    for seg in path {
        match *seg {
            Seg::Key(k) => {
                let t = match (table, value) {
                    (Some(t), _) => t,
                    (None, Some(DeValue::Table(t))) => t,
                    _ => break,
                };
                let Some((key, v)) = t.iter().find(|(key, _)| key.get_ref().as_ref() == k) else {
                    break;
                };
                best = Some(key.span().start);
                table = None;
                value = Some(v.get_ref());
            }
            Seg::Index(i) => {
                let Some(DeValue::Array(a)) = value else {
                    break;
                };
                let Some(v) = a.get(i) else { break };
                best = Some(v.span().start);
                table = None;
                value = Some(v.get_ref());
            }
        }
    }
    best.map(|offset| line_col(text, offset).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[[models]]\nname = \"a\"\nkind = \"ease\"\n\n[[models]]\nname = \"b\"\nkind = \"ials\"\n[models.params]\nfactors = 64\n\n[rerank]\nmmr_lambda = 2.0\n";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(
            line_of(TEXT, &[Seg::Key("rerank"), Seg::Key("mmr_lambda")]),
            Some(12)
        );
        assert_eq!(
            line_of(
                TEXT,
                &[
                    Seg::Key("models"),
                    Seg::Index(1),
                    Seg::Key("params"),
                    Seg::Key("factors")
                ]
            ),
            Some(9)
        );
        assert_eq!(
            line_of(TEXT, &[Seg::Key("models"), Seg::Index(1), Seg::Key("name")]),
            Some(6)
        );
    }

    #[test]
    fn falls_back_to_ancestor() {
        assert_eq!(
            line_of(TEXT, &[Seg::Key("rerank"), Seg::Key("nope")]),
            Some(11)
        );
        assert_eq!(line_of(TEXT, &[Seg::Key("nope")]), None);
    }
}
