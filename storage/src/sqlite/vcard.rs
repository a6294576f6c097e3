//! [`VcardStore`] on SQLite: `vcards`, one row per account.

use hydrant_proto::Element;
use rusqlite::Connection;

use super::pubsub::parse_payload;
use super::{SqliteStore, account_exists};
use crate::{Result, StorageError, VcardAvatar, VcardStore};

impl VcardStore for SqliteStore {
    fn vcard(&self, username: &str) -> Result<Option<Element>> {
        let xml: Option<Vec<u8>> = self.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT vcard FROM vcards WHERE username = ?1")?;
            let mut rows = stmt.query([username])?;
            Ok(match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            })
        })?;
        xml.map(|x| {
            parse_payload(&x)
                .map_err(|e| StorageError::Backend(format!("vcards (username={username:?}): {e}")))
        })
        .transpose()
    }

    fn vcard_avatar(&self, username: &str) -> Result<VcardAvatar> {
        self.read(|tx| avatar(tx, username))
    }

    fn set_vcard(
        &self,
        username: &str,
        vcard: &[u8],
        photo_sha1: Option<&str>,
    ) -> Result<VcardAvatar> {
        self.write(|tx| {
            if !account_exists(tx, username)? {
                return Err(StorageError::NotFound);
            }
            let before = avatar(tx, username)?;
            tx.prepare_cached(
                "INSERT INTO vcards (username, vcard, photo_sha1) VALUES (?1, ?2, ?3)
                 ON CONFLICT (username) DO UPDATE SET
                     vcard = excluded.vcard, photo_sha1 = excluded.photo_sha1",
            )?
            .execute((username, vcard, photo_sha1))?;
            Ok(before)
        })
    }
}

fn avatar(conn: &Connection, username: &str) -> Result<VcardAvatar> {
    let mut stmt = conn.prepare_cached("SELECT photo_sha1 FROM vcards WHERE username = ?1")?;
    let mut rows = stmt.query([username])?;
    Ok(match rows.next()? {
        None => VcardAvatar::NoVcard,
        Some(r) => match r.get::<_, Option<String>>(0)? {
            None => VcardAvatar::NoPhoto,
            Some(h) => VcardAvatar::Sha1(h),
        },
    })
}
