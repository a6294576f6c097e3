//! [`PrivateStore`] on SQLite: `private_xml`, one row per (account, namespace).

use hydrant_proto::Element;

use super::pubsub::parse_payload;
use super::{SqliteStore, account_exists};
use crate::{PrivateQuota, PrivateStore, PrivateWrite, Result, StorageError};

impl PrivateStore for SqliteStore {
    fn private_xml(&self, username: &str, namespace: &str) -> Result<Option<Element>> {
        let xml: Option<Vec<u8>> = self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT xml FROM private_xml WHERE username = ?1 AND namespace = ?2",
            )?;
            let mut rows = stmt.query((username, namespace))?;
            Ok(match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            })
        })?;
        xml.map(|x| {
            parse_payload(&x).map_err(|e| {
                StorageError::Backend(format!(
                    "private_xml (username={username:?}, namespace={namespace:?}): {e}"
                ))
            })
        })
        .transpose()
    }

    fn set_private_xml(
        &self,
        username: &str,
        items: &[(String, Vec<u8>)],
        quota: PrivateQuota,
    ) -> Result<PrivateWrite> {
        // The quota is read and the rows written in one IMMEDIATE transaction, so two
        // sets of the same account cannot both fit in the last bytes.
        self.write(|tx| {
            if !account_exists(tx, username)? {
                return Err(StorageError::NotFound);
            }
            let (mut count, mut bytes): (i64, i64) = tx
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(length(xml)), 0)
                     FROM private_xml WHERE username = ?1",
                )?
                .query_row([username], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let mut old = tx.prepare_cached(
                "SELECT length(xml) FROM private_xml WHERE username = ?1 AND namespace = ?2",
            )?;
            for (ns, xml) in items {
                let mut rows = old.query((username, ns))?;
                if let Some(r) = rows.next()? {
                    count -= 1;
                    bytes -= r.get::<_, i64>(0)?;
                }
                count += 1;
                bytes = bytes.saturating_add(i64::try_from(xml.len()).unwrap_or(i64::MAX));
            }
            if usize::try_from(bytes).unwrap_or(usize::MAX) > quota.max_bytes {
                return Ok(PrivateWrite::OverBytes);
            }
            if usize::try_from(count).unwrap_or(usize::MAX) > quota.max_namespaces {
                return Ok(PrivateWrite::OverNamespaces);
            }
            let mut put = tx.prepare_cached(
                "INSERT INTO private_xml (username, namespace, xml) VALUES (?1, ?2, ?3)
                 ON CONFLICT (username, namespace) DO UPDATE SET xml = excluded.xml",
            )?;
            for (ns, xml) in items {
                put.execute((username, ns, xml))?;
            }
            Ok(PrivateWrite::Stored)
        })
    }
}
