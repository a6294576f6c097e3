//! [`hydrant_pubsub::Store`] on SQLite: one [`SqlitePubsubStore`] per pubsub service,
//! all of them in the `pubsub_*` tables (migration 0002) of the shared database.
//!
//! Every mutating call is one [`Db::group_write`]: atomic (its own savepoint inside the
//! batch transaction) and durable when it returns `Ok` (the batch committed with
//! `synchronous = FULL`). Reads use a reader connection, so item retrieval does not
//! wait for a commit's fsync.
//!
//! Behaviour mirrors [`hydrant_pubsub::MemoryStore`] (the conformance suite checks it):
//! a call on a node that does not exist fails; items are ordered by `seq`; trimming keeps
//! the `keep_items` highest seqs and reports the evicted ids oldest first. Affiliations
//! are loaded in JID order (the service keeps them in a map); subscriptions in the order
//! they were first stored, as `MemoryStore` keeps them.

// The pieces of the item queries, as macros so that `concat!` makes each statement a
// `&'static str` (the statement cache keys on the text). Parameters: ?1 service, ?2
// node, ?3..?6 the bounds, ?7 limit, ?8 offset, ?9 publisher's bare JID, ?10 exact
// publisher or NULL.
macro_rules! items_select {
    () => {
        "SELECT item_id, seq, published_ms, publisher, payload, LENGTH(payload) FROM pubsub_items "
    };
}
macro_rules! seq_range {
    () => {
        "WHERE service = ?1 AND node = ?2 AND seq > ?3 AND seq <= ?4 \
         AND published_ms >= ?5 AND published_ms <= ?6 "
    };
}
macro_rules! by_publisher {
    () => {
        "AND publisher_bare = ?9 AND (?10 IS NULL OR publisher = ?10) "
    };
}
const ITEMS_ASC: &str = concat!(
    items_select!(),
    seq_range!(),
    "ORDER BY seq ASC LIMIT ?7 OFFSET ?8"
);
const ITEMS_DESC: &str = concat!(
    items_select!(),
    seq_range!(),
    "ORDER BY seq DESC LIMIT ?7 OFFSET ?8"
);
pub(super) const ITEMS_BY_PUBLISHER_ASC: &str = concat!(
    items_select!(),
    seq_range!(),
    by_publisher!(),
    "ORDER BY seq ASC LIMIT ?7 OFFSET ?8"
);
pub(super) const ITEMS_BY_PUBLISHER_DESC: &str = concat!(
    items_select!(),
    seq_range!(),
    by_publisher!(),
    "ORDER BY seq DESC LIMIT ?7 OFFSET ?8"
);
const COUNT: &str = concat!("SELECT COUNT(*) FROM pubsub_items ", seq_range!());
pub(super) const COUNT_BY_PUBLISHER: &str = concat!(
    "SELECT COUNT(*) FROM pubsub_items ",
    seq_range!(),
    by_publisher!()
);

use std::collections::BTreeMap;
use std::sync::Arc;

use hydrant_proto::{BareJid, Element, Jid, Limits, StreamEvent, StreamReader};
use hydrant_pubsub::{
    AccessModel, Affiliation, ByteBudget, Committing, Item, ItemId, ItemMeta, ItemQuery, MaxItems,
    NodeConfig, NodeName, NodeRecord, NotificationType, PublishModel, SendLastPublished, Show,
    Store, StoreError, SubChange, SubId, SubOptions, SubState, Subscription,
};
use rusqlite::{Connection, OptionalExtension, Row};

use super::Db;
use crate::{Result, StorageError};

/// The pubsub store of one service (a `pubsub.<domain>` component, or one account's
/// PEP). Made by [`super::SqliteStore::pubsub`]; `Send + Sync`, cheap to create.
#[derive(Clone)]
pub struct SqlitePubsubStore {
    db: Arc<Db>,
    service: Arc<str>,
}

impl std::fmt::Debug for SqlitePubsubStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePubsubStore")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl SqlitePubsubStore {
    pub(super) fn new(db: Arc<Db>, service: &str) -> Self {
        SqlitePubsubStore {
            db,
            service: Arc::from(service),
        }
    }

    /// The service address this store persists.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Runs a write for `node` through group commit; `NotFound` means the node does not
    /// exist, `AlreadyExists` that it does.
    fn write<T: Send + 'static>(
        &self,
        node: &NodeName,
        f: impl FnOnce(&Connection, &str, &str) -> Result<T> + Send + 'static,
    ) -> std::result::Result<T, StoreError> {
        let service = Arc::clone(&self.service);
        let name = node.as_str().to_owned();
        self.db
            .group_write(move |conn| f(conn, &service, &name))
            .map_err(|e| store_error(&e, node))
    }

    /// Queues a write of `node` for the next group commit (see `Store::queue_put_item`).
    fn queue<T: Send + 'static>(
        &self,
        node: &NodeName,
        f: impl FnOnce(&Connection, &str, &str) -> Result<T> + Send + 'static,
    ) -> Box<dyn Committing<T>> {
        let service = Arc::clone(&self.service);
        let name = node.as_str().to_owned();
        let ticket = self.db.group_queue(move |conn| f(conn, &service, &name));
        Box::new(Queued {
            ticket,
            db: Arc::clone(&self.db),
            node: node.clone(),
        })
    }

    /// Runs a read of an existing `node` in one snapshot.
    fn read<T>(
        &self,
        node: &NodeName,
        f: impl FnOnce(&Connection, &str, &str) -> Result<T>,
    ) -> std::result::Result<T, StoreError> {
        self.db
            .read(|tx| {
                require_node(tx, &self.service, node.as_str())?;
                f(tx, &self.service, node.as_str())
            })
            .map_err(|e| store_error(&e, node))
    }
}

/// An update_subscriptions write.
fn subscriptions_job(
    changes: &[SubChange],
) -> impl FnOnce(&Connection, &str, &str) -> Result<()> + Send + 'static {
    let changes = changes.to_vec();
    move |conn: &Connection, service: &str, name: &str| {
        require_node(conn, service, name)?;
        for change in &changes {
            match change {
                SubChange::Put(sub) => put_subscription(conn, service, name, sub)?,
                SubChange::Remove(subid) => {
                    conn.prepare_cached(
                        "DELETE FROM pubsub_subscriptions
                         WHERE service = ?1 AND node = ?2 AND subid = ?3",
                    )?
                    .execute((service, name, subid.as_str()))?;
                }
            }
        }
        Ok(())
    }
}

/// A put_item write: serialised here, before queueing (the batch holds the writer lock,
/// this does not).
#[allow(clippy::type_complexity)]
fn put_item_job(
    node: &NodeName,
    item: &Arc<Item>,
    keep_items: u32,
) -> std::result::Result<
    impl FnOnce(&Connection, &str, &str) -> Result<Vec<ItemId>> + Send + 'static,
    StoreError,
> {
    // The bytes the publish already made, else serialised here.
    let payload: Option<Arc<[u8]>> = item
        .payload_xml
        .clone()
        .or_else(|| item.payload.as_ref().map(|p| Arc::from(p.to_bytes(""))));
    let seq = to_i64(item.seq, "seq").map_err(|e| store_error(&e, node))?;
    let published_ms =
        to_i64(item.published_ms, "published_ms").map_err(|e| store_error(&e, node))?;
    let item = Arc::clone(item);
    Ok(move |conn: &Connection, service: &str, name: &str| {
        // Also the existence check: an UPDATE counts the rows its WHERE matched.
        // (CASE rather than MAX(a, b): PostgreSQL spells that GREATEST.)
        let found = conn
            .prepare_cached(
                "UPDATE pubsub_nodes
                     SET last_seq = CASE WHEN last_seq < ?3 THEN ?3 ELSE last_seq END
                     WHERE service = ?1 AND node = ?2",
            )?
            .execute((service, name, seq))?;
        if found == 0 {
            return Err(StorageError::NotFound);
        }
        conn.prepare_cached(
            "INSERT INTO pubsub_items
                     (service, node, item_id, seq, published_ms, publisher, payload,
                      publisher_bare)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (service, node, item_id) DO UPDATE SET
                     seq = excluded.seq,
                     published_ms = excluded.published_ms,
                     publisher = excluded.publisher,
                     payload = excluded.payload,
                     publisher_bare = excluded.publisher_bare",
        )?
        .execute((
            service,
            name,
            item.id.as_str(),
            seq,
            published_ms,
            item.publisher.as_str(),
            payload,
            item.publisher.to_bare().as_str(),
        ))?;
        trim(conn, service, name, keep_items)
    })
}

/// A write queued for the next group commit.
struct Queued<T> {
    ticket: super::group::Ticket<T>,
    db: Arc<Db>,
    node: NodeName,
}

impl<T: Send> Committing<T> for Queued<T> {
    fn wait(self: Box<Self>) -> std::result::Result<T, StoreError> {
        let Queued { ticket, db, node } = *self;
        ticket.wait_on(&db).map_err(|e| store_error(&e, &node))
    }
}

fn store_error(e: &StorageError, node: &NodeName) -> StoreError {
    match e {
        StorageError::NotFound => StoreError(format!("no node {node}")),
        StorageError::AlreadyExists => StoreError(format!("node {node} exists")),
        other => StoreError(other.to_string()),
    }
}

impl Store for SqlitePubsubStore {
    fn load_nodes(&mut self) -> std::result::Result<Vec<NodeRecord>, StoreError> {
        self.db
            .read(|tx| load_nodes(tx, &self.service))
            .map_err(|e| StoreError(e.to_string()))
    }

    fn create_node(&mut self, node: &NodeRecord) -> std::result::Result<(), StoreError> {
        let record = node.clone();
        self.write(&node.name, move |conn, service, name| {
            if node_exists(conn, service, name)? {
                return Err(StorageError::AlreadyExists);
            }
            conn.prepare_cached(
                "INSERT INTO pubsub_nodes (service, node, creator, created_ms, last_seq,
                     title, description, payload_type, access_model, publish_model,
                     max_items, persist_items, deliver_payloads, deliver_notifications,
                     notify_retract, notify_delete, notify_config, subscribe,
                     send_last_published_item, presence_based_delivery, notification_type)
                 VALUES (?1, ?2, ?3, ?4, ?5, '', '', NULL, 'open', 'publishers', NULL,
                     FALSE, FALSE, FALSE, FALSE, FALSE, FALSE, FALSE, 'never', FALSE,
                     'headline')",
            )?
            .execute((
                service,
                name,
                record.creator.as_str(),
                to_i64(record.created_ms, "created_ms")?,
                to_i64(record.last_seq, "last_seq")?,
            ))?;
            // One statement writes the configuration, for create and configure alike.
            write_config(conn, service, name, &record.config)?;
            for (jid, aff) in &record.affiliations {
                put_affiliation(conn, service, name, jid, *aff)?;
            }
            for sub in &record.subscriptions {
                put_subscription(conn, service, name, sub)?;
            }
            Ok(())
        })
    }

    fn delete_node(&mut self, node: &NodeName) -> std::result::Result<(), StoreError> {
        self.write(node, |conn, service, name| {
            // Items, affiliations, subscriptions and roster groups go by ON DELETE
            // CASCADE.
            let deleted = conn
                .prepare_cached("DELETE FROM pubsub_nodes WHERE service = ?1 AND node = ?2")?
                .execute((service, name))?;
            if deleted == 0 {
                return Err(StorageError::NotFound);
            }
            Ok(())
        })
    }

    fn set_config(
        &mut self,
        node: &NodeName,
        config: &NodeConfig,
        keep_items: u32,
    ) -> std::result::Result<Vec<ItemId>, StoreError> {
        let config = config.clone();
        self.write(node, move |conn, service, name| {
            write_config(conn, service, name, &config)?;
            trim(conn, service, name, keep_items)
        })
    }

    fn set_affiliations(
        &mut self,
        node: &NodeName,
        changes: &[(BareJid, Affiliation)],
    ) -> std::result::Result<(), StoreError> {
        let changes = changes.to_vec();
        self.write(node, move |conn, service, name| {
            require_node(conn, service, name)?;
            for (jid, aff) in &changes {
                put_affiliation(conn, service, name, jid, *aff)?;
            }
            Ok(())
        })
    }

    fn update_subscriptions(
        &mut self,
        node: &NodeName,
        changes: &[SubChange],
    ) -> std::result::Result<(), StoreError> {
        self.write(node, subscriptions_job(changes))
    }

    fn queue_update_subscriptions(
        &mut self,
        node: &NodeName,
        changes: &[SubChange],
    ) -> std::result::Result<Box<dyn Committing<()>>, StoreError> {
        Ok(self.queue(node, subscriptions_job(changes)))
    }

    fn put_item(
        &mut self,
        node: &NodeName,
        item: &Arc<Item>,
        keep_items: u32,
    ) -> std::result::Result<Vec<ItemId>, StoreError> {
        let job = put_item_job(node, item, keep_items)?;
        self.write(node, job)
    }

    fn queue_put_item(
        &mut self,
        node: &NodeName,
        item: &Arc<Item>,
        keep_items: u32,
    ) -> std::result::Result<Box<dyn Committing<Vec<ItemId>>>, StoreError> {
        let job = put_item_job(node, item, keep_items)?;
        Ok(self.queue(node, job))
    }

    fn delete_items(
        &mut self,
        node: &NodeName,
        ids: &[ItemId],
    ) -> std::result::Result<(), StoreError> {
        let ids = ids.to_vec();
        self.write(node, move |conn, service, name| {
            require_node(conn, service, name)?;
            let mut delete = conn.prepare_cached(
                "DELETE FROM pubsub_items WHERE service = ?1 AND node = ?2 AND item_id = ?3",
            )?;
            for id in &ids {
                delete.execute((service, name, id.as_str()))?;
            }
            Ok(())
        })
    }

    fn purge_items(&mut self, node: &NodeName) -> std::result::Result<(), StoreError> {
        self.write(node, |conn, service, name| {
            require_node(conn, service, name)?;
            conn.prepare_cached("DELETE FROM pubsub_items WHERE service = ?1 AND node = ?2")?
                .execute((service, name))?;
            Ok(())
        })
    }

    fn get_item(
        &self,
        node: &NodeName,
        id: &ItemId,
    ) -> std::result::Result<Option<Arc<Item>>, StoreError> {
        self.read(node, |conn, service, name| {
            conn.prepare_cached(
                "SELECT item_id, seq, published_ms, publisher, payload FROM pubsub_items
                 WHERE service = ?1 AND node = ?2 AND item_id = ?3",
            )?
            .query_row((service, name, id.as_str()), RawItem::from_row)
            .optional()?
            .map(|raw| raw.into_item(service, name))
            .transpose()
        })
    }

    fn item_meta(
        &self,
        node: &NodeName,
        ids: &[ItemId],
    ) -> std::result::Result<Vec<ItemMeta>, StoreError> {
        self.read(node, |conn, service, name| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, published_ms, publisher, LENGTH(payload)
                 FROM pubsub_items WHERE service = ?1 AND node = ?2 AND item_id = ?3",
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let row = stmt
                    .query_row((service, name, id.as_str()), |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<i64>>(3)?,
                        ))
                    })
                    .optional()?;
                if let Some((seq, published_ms, publisher, len)) = row {
                    let bad = |what: &dyn std::fmt::Display| bad_item_row(service, name, id, what);
                    out.push(ItemMeta {
                        id: id.clone(),
                        seq: u64::try_from(seq).map_err(|_| bad(&format_args!("seq {seq}")))?,
                        published_ms: u64::try_from(published_ms)
                            .map_err(|_| bad(&format_args!("published_ms {published_ms}")))?,
                        publisher: Jid::new(&publisher)
                            .map_err(|e| bad(&format_args!("publisher {publisher:?}: {e}")))?,
                        payload_bytes: payload_len(len),
                    });
                }
            }
            Ok(out)
        })
    }

    fn query_items(
        &self,
        node: &NodeName,
        q: &ItemQuery,
    ) -> std::result::Result<Vec<Arc<Item>>, StoreError> {
        self.read(node, |conn, service, name| {
            let Some(b) = Bounds::of(q) else {
                return Ok(Vec::new());
            };
            // Fixed statements rather than SQL built per query: all stay in the statement
            // cache. A missing limit is "all" (LIMIT -1 and LIMIT ALL are
            // dialect-specific; the largest BIGINT works in both). The payload's length
            // comes first: a row past the byte budget is never read (LENGTH of a BLOB
            // does not load it). A publisher filter has statements of its own, which
            // walk `pubsub_items_by_publisher` (an optional `?9 IS NULL OR ..` would
            // keep SQLite on the seq index, reading every row of the node).
            let sql = match (q.publisher.is_some(), q.newest_first) {
                (false, false) => ITEMS_ASC,
                (false, true) => ITEMS_DESC,
                (true, false) => ITEMS_BY_PUBLISHER_ASC,
                (true, true) => ITEMS_BY_PUBLISHER_DESC,
            };
            let limit = q.limit.map_or(i64::MAX, saturating_i64);
            let skip = saturating_i64(q.skip);
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = match publisher_params(q) {
                None => stmt.query((
                    service,
                    name,
                    b.seq_above,
                    b.seq_to,
                    b.ms_from,
                    b.ms_to,
                    limit,
                    skip,
                ))?,
                Some((bare, full)) => stmt.query((
                    service,
                    name,
                    b.seq_above,
                    b.seq_to,
                    b.ms_from,
                    b.ms_to,
                    limit,
                    skip,
                    bare,
                    full,
                ))?,
            };
            let mut budget = ByteBudget::new(q.max_bytes);
            let mut raw = Vec::new();
            while let Some(r) = rows.next()? {
                if !budget.admit(payload_len(r.get(5)?)) {
                    break;
                }
                raw.push(RawItem::from_row(r)?);
            }
            raw.into_iter()
                .map(|r| r.into_item(service, name))
                .collect()
        })
    }

    fn count_items(&self, node: &NodeName, q: &ItemQuery) -> std::result::Result<u64, StoreError> {
        self.read(node, |conn, service, name| {
            let Some(b) = Bounds::of(q) else {
                return Ok(0);
            };
            let n: i64 = match publisher_params(q) {
                None => conn.prepare_cached(COUNT)?.query_row(
                    (service, name, b.seq_above, b.seq_to, b.ms_from, b.ms_to),
                    |r| r.get(0),
                )?,
                // ?7 and ?8 (limit, offset) are not referenced: SQLite numbers parameters
                // by their largest index, so they are passed and ignored.
                Some((bare, full)) => conn.prepare_cached(COUNT_BY_PUBLISHER)?.query_row(
                    (
                        service,
                        name,
                        b.seq_above,
                        b.seq_to,
                        b.ms_from,
                        b.ms_to,
                        0,
                        0,
                        bare,
                        full,
                    ),
                    |r| r.get(0),
                )?,
            };
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

/// An [`ItemQuery`]'s bounds as inclusive/exclusive BIGINT values, every open bound
/// replaced by the widest one, so one statement serves every query.
struct Bounds {
    /// `seq > seq_above`
    seq_above: i64,
    /// `seq <= seq_to`
    seq_to: i64,
    /// `published_ms >= ms_from`
    ms_from: i64,
    /// `published_ms <= ms_to`
    ms_to: i64,
}

impl Bounds {
    /// `None` when no stored value (all are in `0..=i64::MAX`) can match.
    fn of(q: &ItemQuery) -> Option<Bounds> {
        let seq_above = match q.after_seq {
            None => -1,
            Some(a) => i64::try_from(a).ok()?,
        };
        let seq_to = match q.before_seq {
            None => i64::MAX,
            Some(0) => return None,
            Some(b) => saturating_i64(b - 1),
        };
        let ms_from = match q.start_ms {
            None => 0,
            Some(s) => i64::try_from(s).ok()?,
        };
        let ms_to = q.end_ms.map_or(i64::MAX, saturating_i64);
        Some(Bounds {
            seq_above,
            seq_to,
            ms_from,
            ms_to,
        })
    }
}

/// [`ItemQuery::publisher`] as statement parameters ?9 and ?10: the bare JID (every
/// resource's items) and, for a full JID, the exact publisher.
fn publisher_params(q: &ItemQuery) -> Option<(String, Option<&str>)> {
    let j = q.publisher.as_ref()?;
    let full = j.resource().is_some().then(|| j.as_str());
    Some((j.to_bare().as_str().to_owned(), full))
}

/// A stored payload's `LENGTH()` (NULL for none) in bytes.
fn payload_len(len: Option<i64>) -> usize {
    len.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn saturating_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

fn to_i64(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| StorageError::Backend(format!("{what} {n} exceeds 2^63-1")))
}

fn node_exists(conn: &Connection, service: &str, name: &str) -> Result<bool> {
    let exists = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM pubsub_nodes WHERE service = ?1 AND node = ?2)",
        )?
        .query_row((service, name), |r| r.get(0))?;
    Ok(exists)
}

fn require_node(conn: &Connection, service: &str, name: &str) -> Result<()> {
    if node_exists(conn, service, name)? {
        Ok(())
    } else {
        Err(StorageError::NotFound)
    }
}

/// Writes every configuration column of an existing node (`NotFound` if there is none)
/// and replaces its allowed roster groups.
fn write_config(conn: &Connection, service: &str, name: &str, c: &NodeConfig) -> Result<()> {
    let max_items = match c.max_items {
        MaxItems::Count(n) => Some(i64::from(n)),
        MaxItems::Max => None,
    };
    let found = conn
        .prepare_cached(
            "UPDATE pubsub_nodes SET
                 title = ?3, description = ?4, payload_type = ?5, access_model = ?6,
                 publish_model = ?7, max_items = ?8, persist_items = ?9,
                 deliver_payloads = ?10, deliver_notifications = ?11, notify_retract = ?12,
                 notify_delete = ?13, notify_config = ?14, subscribe = ?15,
                 send_last_published_item = ?16, presence_based_delivery = ?17,
                 notification_type = ?18
             WHERE service = ?1 AND node = ?2",
        )?
        .execute(rusqlite::params![
            service,
            name,
            c.title,
            c.description,
            c.payload_type,
            c.access_model.as_str(),
            c.publish_model.as_str(),
            max_items,
            c.persist_items,
            c.deliver_payloads,
            c.deliver_notifications,
            c.notify_retract,
            c.notify_delete,
            c.notify_config,
            c.subscribe,
            c.send_last_published_item.as_str(),
            c.presence_based_delivery,
            c.notification_type.as_str(),
        ])?;
    if found == 0 {
        return Err(StorageError::NotFound);
    }
    conn.prepare_cached("DELETE FROM pubsub_roster_groups WHERE service = ?1 AND node = ?2")?
        .execute((service, name))?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO pubsub_roster_groups (service, node, position, group_name)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (position, group) in (0_i64..).zip(&c.roster_groups_allowed) {
        insert.execute((service, name, position, group))?;
    }
    Ok(())
}

/// Sets one affiliation; `None` removes it.
fn put_affiliation(
    conn: &Connection,
    service: &str,
    name: &str,
    jid: &BareJid,
    aff: Affiliation,
) -> Result<()> {
    if aff == Affiliation::None {
        conn.prepare_cached(
            "DELETE FROM pubsub_affiliations WHERE service = ?1 AND node = ?2 AND jid = ?3",
        )?
        .execute((service, name, jid.as_str()))?;
    } else {
        conn.prepare_cached(
            "INSERT INTO pubsub_affiliations (service, node, jid, affiliation)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (service, node, jid) DO UPDATE SET affiliation = excluded.affiliation",
        )?
        .execute((service, name, jid.as_str(), aff.as_str()))?;
    }
    Ok(())
}

/// Inserts a subscription (after the others), or replaces the one with its subid in
/// place.
/// A new subscription at the end of its node's order (the position comes from an
/// index, migration 5).
pub(super) const INSERT_SUBSCRIPTION: &str = "INSERT INTO pubsub_subscriptions
         (service, node, subid, position, jid, state, deliver, show_values, urgent)
     SELECT ?1, ?2, ?3, COALESCE(MAX(position), 0) + 1, ?4, ?5, ?6, ?7, ?8
     FROM pubsub_subscriptions WHERE service = ?1 AND node = ?2";

fn put_subscription(
    conn: &Connection,
    service: &str,
    name: &str,
    sub: &Subscription,
) -> Result<()> {
    let show_values = sub
        .options
        .show_values
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let replaced = conn
        .prepare_cached(
            "UPDATE pubsub_subscriptions SET jid = ?4, state = ?5, deliver = ?6, show_values = ?7,
             urgent = ?8 WHERE service = ?1 AND node = ?2 AND subid = ?3",
        )?
        .execute((
            service,
            name,
            sub.subid.as_str(),
            sub.jid.as_str(),
            sub.state.as_str(),
            sub.options.deliver,
            &show_values,
            sub.options.urgent,
        ))?;
    if replaced == 0 {
        conn.prepare_cached(INSERT_SUBSCRIPTION)?.execute((
            service,
            name,
            sub.subid.as_str(),
            sub.jid.as_str(),
            sub.state.as_str(),
            sub.options.deliver,
            &show_values,
            sub.options.urgent,
        ))?;
    }
    Ok(())
}

/// Keeps the `keep` highest seqs of the node; returns the evicted ids, oldest first.
fn trim(conn: &Connection, service: &str, name: &str, keep: u32) -> Result<Vec<ItemId>> {
    // The newest item that must go, if any: found by walking `keep` entries of the seq
    // index (1 for PEP, 10 by default), rather than counting the node's items.
    let cut: Option<i64> = conn
        .prepare_cached(
            "SELECT seq FROM pubsub_items WHERE service = ?1 AND node = ?2
             ORDER BY seq DESC LIMIT 1 OFFSET ?3",
        )?
        .query_row((service, name, i64::from(keep)), |r| r.get(0))
        .optional()?;
    let Some(cut) = cut else {
        return Ok(Vec::new());
    };
    let evicted = conn
        .prepare_cached(
            "SELECT item_id FROM pubsub_items WHERE service = ?1 AND node = ?2 AND seq <= ?3
             ORDER BY seq",
        )?
        .query_map((service, name, cut), |r| r.get::<_, String>(0))?
        .map(|id| id.map(ItemId::from))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    conn.prepare_cached("DELETE FROM pubsub_items WHERE service = ?1 AND node = ?2 AND seq <= ?3")?
        .execute((service, name, cut))?;
    Ok(evicted)
}

/// An item row as read, turned into an [`Item`] outside rusqlite's row callback so
/// parse errors keep their own message.
struct RawItem {
    id: String,
    seq: i64,
    published_ms: i64,
    publisher: String,
    payload: Option<Vec<u8>>,
}

impl RawItem {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawItem> {
        Ok(RawItem {
            id: r.get(0)?,
            seq: r.get(1)?,
            published_ms: r.get(2)?,
            publisher: r.get(3)?,
            payload: r.get(4)?,
        })
    }

    /// The item, or an error naming the row (`pubsub_items` and its key).
    fn into_item(self, service: &str, node: &str) -> Result<Arc<Item>> {
        let bad = |what: &dyn std::fmt::Display| bad_item_row(service, node, &self.id, what);
        Ok(Arc::new(Item {
            payload: self
                .payload
                .as_deref()
                .map(parse_payload)
                .transpose()
                .map_err(|e| match e {
                    StorageError::Backend(m) => bad(&m),
                    other => bad(&other),
                })?,
            publisher: Jid::new(&self.publisher)
                .map_err(|e| bad(&format_args!("publisher {:?}: {e}", self.publisher)))?,
            seq: u64::try_from(self.seq).map_err(|_| bad(&format_args!("seq {}", self.seq)))?,
            published_ms: u64::try_from(self.published_ms)
                .map_err(|_| bad(&format_args!("published_ms {}", self.published_ms)))?,
            id: ItemId::from(self.id),
            // Not kept: read items are rendered from the element.
            payload_xml: None,
        }))
    }
}

/// Parses a payload stored by `put_item` (`Element::to_bytes("")`: every namespace is
/// declared on the element itself) back into the element.
///
/// hydrant-proto parses elements only inside a stream, so the bytes are wrapped in a
/// synthetic one. Its header declares no default namespace: an element written with
/// parent namespace "" reads back with exactly the namespaces it had, including none.
/// Limits are sized to the payload: it was checked when it arrived, and these are bytes
/// hydrant wrote.
pub(crate) fn parse_payload(bytes: &[u8]) -> Result<Element> {
    const HEADER: &[u8] = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
    let mut reader = StreamReader::new(Limits {
        max_stanza_bytes: bytes.len(),
        max_header_bytes: HEADER.len(),
        max_depth: usize::MAX,
        max_attrs: usize::MAX,
        max_ns_bytes: usize::MAX,
        max_attr_bytes: usize::MAX,
    });
    let bad = |e: &dyn std::fmt::Display| StorageError::Backend(format!("payload: {e}"));
    reader.feed(HEADER).map_err(|e| bad(&e))?;
    reader.feed(bytes).map_err(|e| bad(&e))?;
    loop {
        match reader.next_event().map_err(|e| bad(&e))? {
            Some(StreamEvent::Open(_)) => {}
            Some(StreamEvent::Stanza(el)) => return Ok(el),
            Some(StreamEvent::Close) | None => return Err(bad(&"no element")),
        }
    }
}

/// Everything of one service, in four queries whatever the number of nodes.
///
/// This runs when a service opens (the components at start-up, a PEP service on first
/// use). A row that does not decode (a value the schema's CHECKs should have refused,
/// the wrong type in a column, an unparsable JID) fails the whole load with an error
/// naming the table and the row's key, so an operator can find it with plain SQL.
fn load_nodes(conn: &Connection, service: &str) -> Result<Vec<NodeRecord>> {
    let mut nodes: BTreeMap<String, NodeRecord> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT node, creator, created_ms, last_seq, title, description, payload_type,
             access_model, publish_model, max_items, persist_items, deliver_payloads,
             deliver_notifications, notify_retract, notify_delete, notify_config, subscribe,
             send_last_published_item, presence_based_delivery, notification_type
         FROM pubsub_nodes WHERE service = ?1",
    )?;
    let mut rows = stmt.query([service])?;
    while let Some(r) = rows.next()? {
        let name = key_text(r, 0, "pubsub_nodes", service)?;
        let record = node_row(r, &name).map_err(|e| {
            bad_row(
                "pubsub_nodes",
                format_args!("service={service:?} node={name:?}"),
                e,
            )
        })?;
        nodes.insert(name, record);
    }
    drop(rows);
    drop(stmt);

    // Rows of child tables whose node was not loaded cannot exist (foreign keys), but a
    // lookup miss is skipped rather than trusted.
    let mut stmt = conn.prepare_cached(
        "SELECT node, group_name, position FROM pubsub_roster_groups WHERE service = ?1
         ORDER BY node, position",
    )?;
    let mut rows = stmt.query([service])?;
    while let Some(r) = rows.next()? {
        let name = key_text(r, 0, "pubsub_roster_groups", service)?;
        let group: String = r.get(1).map_err(|e| {
            let position = r.get_ref(2).map(|v| format!("{v:?}")).unwrap_or_default();
            bad_row(
                "pubsub_roster_groups",
                format_args!("service={service:?} node={name:?} position={position}"),
                e,
            )
        })?;
        if let Some(n) = nodes.get_mut(&name) {
            n.config.roster_groups_allowed.push(group);
        }
    }
    drop(rows);
    drop(stmt);

    let mut stmt = conn.prepare_cached(
        "SELECT node, jid, affiliation FROM pubsub_affiliations WHERE service = ?1
         ORDER BY node, jid",
    )?;
    let mut rows = stmt.query([service])?;
    while let Some(r) = rows.next()? {
        let name = key_text(r, 0, "pubsub_affiliations", service)?;
        let jid = key_text(r, 1, "pubsub_affiliations", service)?;
        let key = || format!("service={service:?} node={name:?} jid={jid:?}");
        let bare = BareJid::new(&jid)
            .map_err(|e| bad_row("pubsub_affiliations", key(), format_args!("jid: {e}")))?;
        let aff: String = r
            .get(2)
            .map_err(|e| bad_row("pubsub_affiliations", key(), e))?;
        let aff = Affiliation::from_name(&aff)
            .filter(|a| *a != Affiliation::None)
            .ok_or_else(|| {
                bad_row(
                    "pubsub_affiliations",
                    key(),
                    format_args!("affiliation {aff:?}"),
                )
            })?;
        if let Some(n) = nodes.get_mut(&name) {
            n.affiliations.push((bare, aff));
        }
    }
    drop(rows);
    drop(stmt);

    let mut stmt = conn.prepare_cached(
        "SELECT node, subid, jid, state, deliver, show_values, urgent FROM pubsub_subscriptions
         WHERE service = ?1 ORDER BY node, position",
    )?;
    let mut rows = stmt.query([service])?;
    while let Some(r) = rows.next()? {
        let name = key_text(r, 0, "pubsub_subscriptions", service)?;
        let subid = key_text(r, 1, "pubsub_subscriptions", service)?;
        let sub = subscription_row(r, &subid).map_err(|e| {
            bad_row(
                "pubsub_subscriptions",
                format_args!("service={service:?} node={name:?} subid={subid:?}"),
                e,
            )
        })?;
        if let Some(n) = nodes.get_mut(&name) {
            n.subscriptions.push(sub);
        }
    }
    Ok(nodes.into_values().collect())
}

/// A row of `table` that does not decode, named by its key.
/// A `pubsub_items` row that does not decode, named by its key.
fn bad_item_row(
    service: &str,
    node: &str,
    id: &(impl std::fmt::Debug + ?Sized),
    what: &dyn std::fmt::Display,
) -> StorageError {
    bad_row(
        "pubsub_items",
        format_args!("service={service:?} node={node:?} item_id={id:?}"),
        what,
    )
}

fn bad_row(table: &str, key: impl std::fmt::Display, what: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("corrupt row in {table} ({key}): {what}"))
}

/// A key column as text; if even that fails, the error names the service and column.
fn key_text(r: &Row<'_>, i: usize, table: &str, service: &str) -> Result<String> {
    r.get(i).map_err(|e| {
        let column = r.as_ref().column_name(i).unwrap_or("?");
        bad_row(
            table,
            format_args!("service={service:?}, unreadable {column}"),
            e,
        )
    })
}

/// One `pubsub_nodes` row (without its child rows); the error says which column.
fn node_row(r: &Row<'_>, name: &str) -> std::result::Result<NodeRecord, String> {
    fn get<T: rusqlite::types::FromSql>(r: &Row<'_>, i: usize) -> std::result::Result<T, String> {
        r.get(i).map_err(|e| e.to_string())
    }
    fn parsed<T>(v: Option<T>, column: &str, raw: &str) -> std::result::Result<T, String> {
        v.ok_or_else(|| format!("{column} {raw:?}"))
    }
    let access: String = get(r, 7)?;
    let publish: String = get(r, 8)?;
    let send_last: String = get(r, 17)?;
    let notification: String = get(r, 19)?;
    let creator: String = get(r, 1)?;
    let max_items: Option<i64> = get(r, 9)?;
    let config = NodeConfig {
        title: get(r, 4)?,
        description: get(r, 5)?,
        payload_type: get(r, 6)?,
        access_model: parsed(AccessModel::from_name(&access), "access_model", &access)?,
        roster_groups_allowed: Vec::new(),
        publish_model: parsed(PublishModel::from_name(&publish), "publish_model", &publish)?,
        max_items: match max_items {
            None => MaxItems::Max,
            Some(n) => MaxItems::Count(u32::try_from(n).map_err(|_| format!("max_items {n}"))?),
        },
        persist_items: get(r, 10)?,
        deliver_payloads: get(r, 11)?,
        deliver_notifications: get(r, 12)?,
        notify_retract: get(r, 13)?,
        notify_delete: get(r, 14)?,
        notify_config: get(r, 15)?,
        subscribe: get(r, 16)?,
        send_last_published_item: parsed(
            SendLastPublished::from_name(&send_last),
            "send_last_published_item",
            &send_last,
        )?,
        presence_based_delivery: get(r, 18)?,
        notification_type: parsed(
            NotificationType::from_name(&notification),
            "notification_type",
            &notification,
        )?,
    };
    let created_ms: i64 = get(r, 2)?;
    let last_seq: i64 = get(r, 3)?;
    Ok(NodeRecord {
        name: NodeName::from(name),
        config,
        affiliations: Vec::new(),
        subscriptions: Vec::new(),
        creator: Jid::new(&creator).map_err(|e| format!("creator {creator:?}: {e}"))?,
        created_ms: u64::try_from(created_ms).map_err(|_| format!("created_ms {created_ms}"))?,
        last_seq: u64::try_from(last_seq).map_err(|_| format!("last_seq {last_seq}"))?,
    })
}

/// One `pubsub_subscriptions` row; the error says which column.
fn subscription_row(r: &Row<'_>, subid: &str) -> std::result::Result<Subscription, String> {
    let jid: String = r.get(2).map_err(|e| e.to_string())?;
    let state: String = r.get(3).map_err(|e| e.to_string())?;
    let shows: String = r.get(5).map_err(|e| e.to_string())?;
    Ok(Subscription {
        jid: Jid::new(&jid).map_err(|e| format!("jid {jid:?}: {e}"))?,
        state: SubState::from_name(&state).ok_or_else(|| format!("state {state:?}"))?,
        options: SubOptions {
            deliver: r.get(4).map_err(|e| e.to_string())?,
            show_values: shows
                .split_ascii_whitespace()
                .map(|s| Show::from_name(s).ok_or_else(|| format!("show value {s:?}")))
                .collect::<std::result::Result<_, _>>()?,
            urgent: r.get(6).map_err(|e| e.to_string())?,
        },
        subid: SubId::from(subid),
    })
}
