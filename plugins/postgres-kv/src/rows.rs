//! Reading the rows the statements of [`crate::queries`] return (text
//! format). A row that does not decode is `internal`, naming the column,
//! never its content.

use tresor_pgwire::wire::Row;
use tresor_plugin_sdk::{Error, Metadata, Settings, VersionInfo};

/// One version, as `Queries::versions` returns it, with the sealed value
/// when `Queries::latest` or `Queries::version` read it.
#[derive(Debug, PartialEq, Eq)]
pub struct VersionRow {
    /// The version number.
    pub version: u64,
    /// When it was written, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it was soft-deleted; `None`: it is not.
    pub deleted_ms: Option<u64>,
    /// Its value was destroyed for good.
    pub destroyed: bool,
    /// When its `delete_version_after` deletes it; 0: never.
    pub delete_at_ms: u64,
    /// That time has passed.
    pub expired: bool,
    /// Its metadata.
    pub metadata: Metadata,
    /// The sealed value (`None` when destroyed, or not read).
    pub sealed: Option<Vec<u8>>,
}

impl VersionRow {
    /// Decodes a row of `Queries::versions` (7 columns) or of
    /// `Queries::latest` / `Queries::version` (8, the last the sealed
    /// value in hex).
    pub fn decode(row: &Row) -> Result<VersionRow, Error> {
        let metadata = text(row, 6, "metadata")?;
        let metadata: Metadata = serde_json::from_str(metadata).map_err(|_| malformed("metadata"))?;
        let sealed = match row.get(7) {
            None | Some(None) => None,
            Some(Some(hex)) => Some(decode_hex(hex).ok_or_else(|| malformed("sealed"))?),
        };
        Ok(VersionRow {
            version: number(row, 0, "version")?,
            created_ms: number(row, 1, "created_ms")?,
            deleted_ms: optional_number(row, 2, "deleted_ms")?,
            destroyed: boolean(row, 3, "destroyed")?,
            delete_at_ms: number(row, 4, "delete_at_ms")?,
            expired: boolean(row, 5, "expired")?,
            metadata,
            sealed,
        })
    }

    /// The version as `versions` describes it: deleted when soft-deleted
    /// or past its `delete_version_after`, with the time of the one or the
    /// other.
    pub fn into_info(self) -> VersionInfo {
        VersionInfo {
            version: self.version.to_string(),
            created_ms: self.created_ms,
            deleted: self.deleted_ms.is_some() || self.expired,
            destroyed: self.destroyed,
            deletion_ms: self.deleted_ms.unwrap_or(self.delete_at_ms),
            metadata: self.metadata,
        }
    }
}

/// What a write needs to know, from `Queries::write_state`.
pub struct WriteState {
    /// The secret's own settings.
    pub secret: Settings,
    /// The mount's settings (empty when it has none).
    pub mount: Settings,
    /// The latest version (0: none yet).
    pub latest: u64,
}

impl WriteState {
    /// Decodes the row of `Queries::write_state`.
    pub fn decode(row: &Row) -> Result<WriteState, Error> {
        Ok(WriteState {
            secret: settings(row, 0, false)?,
            mount: settings(row, 3, true)?,
            latest: optional_number(row, 6, "latest version")?.unwrap_or(0),
        })
    }
}

/// A secret's row, from `Queries::settings`.
pub struct StoredSettings {
    /// `set-settings` was called for it.
    pub has_settings: bool,
    /// Its settings (all unset when it has none).
    pub settings: Settings,
    /// It has versions.
    pub has_versions: bool,
}

impl StoredSettings {
    /// Decodes the row of `Queries::settings`.
    pub fn decode(row: &Row) -> Result<StoredSettings, Error> {
        Ok(StoredSettings {
            has_settings: boolean(row, 0, "has_settings")?,
            settings: settings(row, 1, false)?,
            has_versions: boolean(row, 4, "has versions")?,
        })
    }
}

/// The one boolean of a one-row, one-column answer; `None` for no row.
pub fn single_boolean(rows: &[Row], column: &str) -> Result<Option<bool>, Error> {
    rows.first().map(|row| boolean(row, 0, column)).transpose()
}

/// Settings that set nothing.
pub fn empty_settings() -> Settings {
    Settings {
        max_versions: 0,
        cas_required: false,
        delete_version_after_ms: 0,
    }
}

/// `max_versions`, `cas_required`, `delete_version_after_ms` from column
/// `at` on; with `nullable`, all `NULL` (no row joined) is no settings.
fn settings(row: &Row, at: usize, nullable: bool) -> Result<Settings, Error> {
    if nullable && matches!(row.get(at), Some(None)) {
        return Ok(empty_settings());
    }
    let max_versions = number(row, at, "max_versions")?;
    Ok(Settings {
        max_versions: u32::try_from(max_versions).unwrap_or(u32::MAX),
        cas_required: boolean(row, at + 1, "cas_required")?,
        delete_version_after_ms: number(row, at + 2, "delete_version_after_ms")?,
    })
}

fn text<'r>(row: &'r Row, at: usize, column: &str) -> Result<&'r str, Error> {
    match row.get(at) {
        Some(Some(text)) => Ok(text),
        _ => Err(malformed(column)),
    }
}

fn number(row: &Row, at: usize, column: &str) -> Result<u64, Error> {
    optional_number(row, at, column)?.ok_or_else(|| malformed(column))
}

fn optional_number(row: &Row, at: usize, column: &str) -> Result<Option<u64>, Error> {
    match row.get(at) {
        Some(None) => Ok(None),
        Some(Some(text)) => text.parse().map(Some).map_err(|_| malformed(column)),
        None => Err(malformed(column)),
    }
}

fn boolean(row: &Row, at: usize, column: &str) -> Result<bool, Error> {
    match text(row, at, column)? {
        "t" => Ok(true),
        "f" => Ok(false),
        _ => Err(malformed(column)),
    }
}

/// The version number and sealed value of a `sealed_versions` row.
pub fn sealed_version(row: &Row) -> Result<(u64, Vec<u8>), Error> {
    let sealed = decode_hex(text(row, 1, "sealed")?).ok_or_else(|| malformed("sealed"))?;
    Ok((number(row, 0, "version")?, sealed))
}

/// Decodes the lower-case hex of `encode(..., 'hex')`.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

fn malformed(column: &str) -> Error {
    Error::internal(format!(
        "PostgreSQL answered a malformed row (column `{column}`): were the plugin's tables altered?"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[Option<&str>]) -> Row {
        cells.iter().map(|c| c.map(str::to_owned)).collect()
    }

    #[test]
    fn decodes_a_version_with_its_sealed_value() {
        let r = row(&[
            Some("3"),
            Some("1700000000000"),
            None,
            Some("f"),
            Some("0"),
            Some("f"),
            Some(r#"[["team","a"],["tier","gold"]]"#),
            Some("00ff10"),
        ]);
        let v = VersionRow::decode(&r).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((v.version, v.created_ms, v.deleted_ms), (3, 1_700_000_000_000, None));
        assert_eq!(
            v.metadata,
            vec![("team".into(), "a".into()), ("tier".into(), "gold".into())]
        );
        assert_eq!(v.sealed, Some(vec![0x00, 0xff, 0x10]));
        let info = v.into_info();
        assert!(!info.deleted && !info.destroyed);
        assert_eq!((info.version.as_str(), info.deletion_ms), ("3", 0));
    }

    #[test]
    fn deletion_is_the_soft_delete_or_the_deadline() {
        let base = |deleted: Option<&'static str>, delete_at: &'static str, expired: &'static str| {
            row(&[
                Some("1"),
                Some("5"),
                deleted,
                Some("t"),
                Some(delete_at),
                Some(expired),
                Some("[]"),
                None,
            ])
        };
        let soft = VersionRow::decode(&base(Some("7"), "9", "f")).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(soft.sealed, None);
        let info = soft.into_info();
        assert!(info.deleted && info.destroyed);
        assert_eq!(info.deletion_ms, 7);
        let due = VersionRow::decode(&base(None, "9", "f"))
            .unwrap_or_else(|e| panic!("{e:?}"))
            .into_info();
        assert!(!due.deleted);
        assert_eq!(due.deletion_ms, 9);
        let past = VersionRow::decode(&base(None, "9", "t"))
            .unwrap_or_else(|e| panic!("{e:?}"))
            .into_info();
        assert!(past.deleted);
        assert_eq!(past.deletion_ms, 9);
    }

    #[test]
    fn decodes_settings_and_write_state() {
        let r = row(&[Some("3"), Some("t"), Some("600000"), None, None, None, None]);
        let s = WriteState::decode(&r).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (
                s.secret.max_versions,
                s.secret.cas_required,
                s.secret.delete_version_after_ms
            ),
            (3, true, 600_000)
        );
        assert_eq!((s.mount.max_versions, s.mount.cas_required, s.latest), (0, false, 0));
        let r = row(&[
            Some("0"),
            Some("f"),
            Some("0"),
            Some("99999999999"),
            Some("f"),
            Some("0"),
            Some("12"),
        ]);
        let s = WriteState::decode(&r).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((s.mount.max_versions, s.latest), (u32::MAX, 12));

        let r = row(&[Some("f"), Some("0"), Some("f"), Some("0"), Some("t")]);
        let stored = StoredSettings::decode(&r).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!stored.has_settings && stored.has_versions);
        assert_eq!(single_boolean(&[row(&[Some("t")])], "x").ok(), Some(Some(true)));
        assert_eq!(single_boolean(&[], "x").ok(), Some(None));
    }

    #[test]
    fn a_malformed_row_names_the_column_not_the_content() {
        let good = [
            Some("1"),
            Some("5"),
            None,
            Some("f"),
            Some("0"),
            Some("f"),
            Some("[]"),
            Some("ab"),
        ];
        for (at, bad) in [
            (0, Some("x")),
            (3, Some("yes")),
            (6, Some("{\"s3cr3t\"")),
            (7, Some("abc")),
            (1, None),
        ] {
            let mut cells = good;
            cells[at] = bad;
            match VersionRow::decode(&row(&cells)) {
                Err(Error::Internal(m)) => assert!(m.contains("column `") && !m.contains("s3cr3t"), "{m}"),
                other => panic!("column {at}: expected internal, got {other:?}"),
            }
        }
        assert!(VersionRow::decode(&row(&good[..3])).is_err());
    }
}
