//! The stream commands' answers, read into plain values: pure functions, tested offline.

use super::super::entry::FIELD;
use redis::Value;

/// What one `XAUTOCLAIM` gave.
pub(super) struct Claimed {
    /// Where the next round starts (`0-0`: the pending list was walked through).
    pub(super) cursor: Option<String>,
    /// The entries claimed, with their `e` field.
    pub(super) entries: Vec<(String, Option<String>)>,
    /// Pending entries no longer in the stream (trimmed): Redis dropped them from the list.
    pub(super) trimmed: Vec<String>,
}

impl Claimed {
    /// Reads an `XAUTOCLAIM` answer.
    pub(super) fn of(answer: &Value) -> Claimed {
        let parts = items(answer);
        Claimed {
            cursor: parts.first().and_then(text),
            entries: parts.get(1).map(entries_of).unwrap_or_default(),
            trimmed: parts
                .get(2)
                .map(|ids| items(ids).iter().filter_map(text).collect())
                .unwrap_or_default(),
        }
    }
}

/// The entries of an `XREADGROUP` answer (one stream; nil when the block timed out).
pub(super) fn read_entries(answer: &Value) -> Vec<(String, Option<String>)> {
    let streams: Vec<&Value> = match answer {
        Value::Map(pairs) => pairs.iter().map(|(_, entries)| entries).collect(),
        other => items(other)
            .iter()
            .filter_map(|stream| items(stream).get(1))
            .collect(),
    };
    streams.into_iter().flat_map(entries_of).collect()
}

/// `[[id, [field, value, ...]], ...]` → `(id, the e field)`.
fn entries_of(entries: &Value) -> Vec<(String, Option<String>)> {
    items(entries)
        .iter()
        .filter_map(|entry| {
            let parts = items(entry);
            let id = text(parts.first()?)?;
            let fields = parts.get(1).map(items).unwrap_or_default();
            let field = fields
                .chunks(2)
                .find(|pair| text(&pair[0]).as_deref() == Some(FIELD))
                .and_then(|pair| pair.get(1))
                .and_then(text);
            Some((id, field))
        })
        .collect()
}

fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        _ => &[],
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn entry(id: &str, e: &str) -> Value {
        Value::Array(vec![bulk(id), Value::Array(vec![bulk("e"), bulk(e)])])
    }

    #[test]
    fn a_read_answer_gives_its_entries_and_a_timeout_none() {
        let answer = Value::Array(vec![Value::Array(vec![
            bulk("{ringcast:intake:0}"),
            Value::Array(vec![entry("1-0", "one"), entry("2-0", "two")]),
        ])]);
        assert_eq!(
            read_entries(&answer),
            [
                ("1-0".to_owned(), Some("one".to_owned())),
                ("2-0".to_owned(), Some("two".to_owned()))
            ]
        );
        assert!(read_entries(&Value::Nil).is_empty());
    }

    #[test]
    fn a_claim_answer_gives_cursor_entries_and_trimmed_ids() {
        let answer = Value::Array(vec![
            bulk("5-0"),
            Value::Array(vec![
                entry("3-0", "three"),
                Value::Array(vec![bulk("4-0"), Value::Array(vec![bulk("x"), bulk("y")])]),
            ]),
            Value::Array(vec![bulk("1-0")]),
        ]);
        let claimed = Claimed::of(&answer);
        assert_eq!(claimed.cursor.as_deref(), Some("5-0"));
        assert_eq!(
            claimed.entries,
            [
                ("3-0".to_owned(), Some("three".to_owned())),
                ("4-0".to_owned(), None)
            ]
        );
        assert_eq!(claimed.trimmed, ["1-0"]);
    }
}
