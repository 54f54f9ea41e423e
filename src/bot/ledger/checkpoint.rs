//! Where a source resumes reading after a restart: a value of the source's
//! own kind, journaled (a `ckpt` record) after the decisions of the lines
//! before it, and kept in snapshots. A stream that cannot resume has none.
//!
//! In the journal, a file's position is `"dev":…,"ino":…,"off":…` (as
//! every release wrote it) and a cursor `"cursor":"…"`; in a snapshot,
//! `{"dev":…,"ino":…,"offset":…}` (as every release wrote it) and
//! `{"cursor":"…"}`.

use serde::de::MapAccess;
use serde::{Deserialize, Serialize};

use super::record::{take_once, Field, Value};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub enum Checkpoint {
    /// A byte offset in one file, named by device and inode so that a
    /// rotated or replaced file is not mistaken for it.
    File { dev: u64, ino: u64, offset: u64 },
    /// A poller's cursor: what the remote end gave to resume from.
    Cursor(String),
}

/// A checkpoint as a snapshot holds it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum Stored {
    File { dev: u64, ino: u64, offset: u64 },
    Cursor { cursor: String },
}

impl From<Stored> for Checkpoint {
    fn from(stored: Stored) -> Checkpoint {
        match stored {
            Stored::File { dev, ino, offset } => Checkpoint::File { dev, ino, offset },
            Stored::Cursor { cursor } => Checkpoint::Cursor(cursor),
        }
    }
}

impl From<Checkpoint> for Stored {
    fn from(checkpoint: Checkpoint) -> Stored {
        match checkpoint {
            Checkpoint::File { dev, ino, offset } => Stored::File { dev, ino, offset },
            Checkpoint::Cursor(cursor) => Stored::Cursor { cursor },
        }
    }
}

/// The journal fields of a checkpoint read so far.
#[derive(Default)]
pub(crate) struct Fields {
    dev: Option<u64>,
    ino: Option<u64>,
    off: Option<u64>,
    cursor: Option<String>,
}

impl<'a> Field<'a> for Checkpoint {
    type Owned = Checkpoint;
    type Partial = Fields;

    fn write(&self, _member: &str, out: &mut Vec<u8>) {
        match self {
            Checkpoint::File { dev, ino, offset } => {
                for (member, value) in [
                    (",\"dev\":", dev),
                    (",\"ino\":", ino),
                    (",\"off\":", offset),
                ] {
                    out.extend_from_slice(member.as_bytes());
                    Value::write(value, out);
                }
            }
            Checkpoint::Cursor(cursor) => {
                out.extend_from_slice(b",\"cursor\":");
                Value::write(cursor, out);
            }
        }
    }

    fn take<A: MapAccess<'a>>(
        fields: &mut Fields,
        _name: &str,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        match key {
            "dev" => take_once(&mut fields.dev, key, map),
            "ino" => take_once(&mut fields.ino, key, map),
            "off" => take_once(&mut fields.off, key, map),
            "cursor" => take_once(&mut fields.cursor, key, map),
            _ => Ok(false),
        }
    }

    fn finish(fields: Fields, _name: &str) -> Result<Checkpoint, String> {
        match fields {
            Fields {
                dev: Some(dev),
                ino: Some(ino),
                off: Some(offset),
                cursor: None,
            } => Ok(Checkpoint::File { dev, ino, offset }),
            Fields {
                dev: None,
                ino: None,
                off: None,
                cursor: Some(cursor),
            } => Ok(Checkpoint::Cursor(cursor)),
            _ => Err(
                "with neither a whole file position (\"dev\", \"ino\", \"off\") nor only a \"cursor\""
                    .into(),
            ),
        }
    }

    fn into_owned(self) -> Checkpoint {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_a_file_position_as_every_release_did_and_a_cursor_beside_it() {
        let file = Checkpoint::File {
            dev: 1,
            ino: 2,
            offset: 3,
        };
        let text = serde_json::to_string(&file).unwrap();
        assert_eq!(text, r#"{"dev":1,"ino":2,"offset":3}"#);
        assert_eq!(serde_json::from_str::<Checkpoint>(&text).unwrap(), file);
        let cursor = Checkpoint::Cursor("page=7".into());
        let text = serde_json::to_string(&cursor).unwrap();
        assert_eq!(text, r#"{"cursor":"page=7"}"#);
        assert_eq!(serde_json::from_str::<Checkpoint>(&text).unwrap(), cursor);
        assert!(serde_json::from_str::<Checkpoint>(r#"{"dev":1,"ino":2}"#).is_err());
    }
}
