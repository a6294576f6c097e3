//! The behaviour every backend must show, written once against `&dyn Store`.
//!
//! Backends call [`run_conformance`] on a fresh, empty store and [`run_persistence`]
//! with a function that opens the same durable store again each time. Compiled for this
//! crate's tests and, with the `conformance` feature, for other crates' (a PostgreSQL
//! backend, integration tests). Failures panic, as test assertions do.

use hydrant_proto::Element;
use hydrant_proto::scram::{ScramKeys, StoredCredentials};

use crate::{
    AccountChange, PrivateQuota, PrivateWrite, RosterEntry, StorageError, Store, SubState,
    VcardAvatar,
};

/// Runs every section below. `store` must start empty.
pub fn run_conformance(store: &dyn Store) {
    accounts(store);
    account_deletion_cascades(store);
    roster(store);
    pending_subscriptions(store);
    pending_subscriptions_capped(store);
    offline(store);
    account_changes(store);
    contact_removed_everywhere(store);
    blocklist(store);
    blocklist_capped(store);
    private_xml(store);
    vcards(store);
}

/// Data written through one store is there, unchanged, through the next. `open` must
/// return an empty store the first time, and the same database every time.
pub fn run_persistence(open: &dyn Fn() -> Box<dyn Store>) {
    let store = open();
    store.create_account("romeo", &creds(1)).unwrap();
    let juliet = entry("juliet@capulet.lit", SubState::Both, &["Lovers"]);
    let version = store.set_roster_item("romeo", &juliet).unwrap();
    store
        .add_pending_in("romeo", "tybalt@capulet.lit", b"<presence/>")
        .unwrap();
    assert!(
        store
            .store_offline("romeo", b"<message>1</message>", 10)
            .unwrap()
    );
    assert!(
        store
            .store_offline("romeo", b"<message>2</message>", 10)
            .unwrap()
    );
    assert!(
        store
            .block("romeo", &["tybalt@capulet.lit".to_owned()], 10)
            .unwrap()
    );
    let prefs = private_query("exodus:prefs", "Hamlet");
    assert_eq!(
        store
            .set_private_xml(
                "romeo",
                &[("exodus:prefs".into(), prefs.to_bytes(""))],
                QUOTA
            )
            .unwrap(),
        PrivateWrite::Stored
    );
    store
        .set_vcard("romeo", &vcard("Romeo").to_bytes(""), Some("abc123"))
        .unwrap();
    drop(store);

    let store = open();
    assert_eq!(store.list_accounts().unwrap(), ["romeo"]);
    assert_eq!(store.blocklist("romeo").unwrap(), ["tybalt@capulet.lit"]);
    assert_eq!(
        store.private_xml("romeo", "exodus:prefs").unwrap(),
        Some(prefs)
    );
    assert_eq!(store.vcard("romeo").unwrap(), Some(vcard("Romeo")));
    assert_eq!(
        store.vcard_avatar("romeo").unwrap(),
        VcardAvatar::Sha1("abc123".into())
    );
    assert_eq!(store.credentials("romeo").unwrap(), Some(creds(1)));
    assert_eq!(
        store.roster("romeo").unwrap(),
        (version, vec![juliet.clone()])
    );
    assert_eq!(
        store.pending_in("romeo").unwrap(),
        [("tybalt@capulet.lit".to_owned(), b"<presence/>".to_vec())]
    );
    // Versions keep growing after a restart: clients cache rosters by version.
    let next = store.set_roster_item("romeo", &entry("nurse@capulet.lit", SubState::None, &[]));
    assert!(next.unwrap() > version);
    drop(store);

    let store = open();
    assert_eq!(
        store.take_offline("romeo").unwrap(),
        [
            b"<message>1</message>".to_vec(),
            b"<message>2</message>".to_vec()
        ]
    );
    drop(store);

    // Taking is durable too.
    let store = open();
    assert_eq!(store.count_offline("romeo").unwrap(), 0);
}

/// Create, duplicate, credentials, listing order.
pub fn accounts(store: &dyn Store) {
    assert_eq!(store.list_accounts().unwrap(), Vec::<String>::new());
    assert!(!store.account_exists("alice").unwrap());
    assert_eq!(store.credentials("alice").unwrap(), None);

    store.create_account("alice", &creds(1)).unwrap();
    assert!(store.account_exists("alice").unwrap());
    assert_eq!(store.credentials("alice").unwrap(), Some(creds(1)));

    // A duplicate is refused and leaves the first account's credentials alone.
    let dup = store.create_account("alice", &creds(2));
    assert!(matches!(dup, Err(StorageError::AlreadyExists)), "{dup:?}");
    assert_eq!(store.credentials("alice").unwrap(), Some(creds(1)));

    // Usernames are compared as bytes: the caller has already normalised them.
    store.create_account("Alice", &creds(3)).unwrap();
    assert_eq!(store.credentials("Alice").unwrap(), Some(creds(3)));

    // Sorted bytewise: "é" (0xC3 0xA9) after "z", uppercase before lowercase.
    for name in ["zed", "émile", "bob"] {
        store.create_account(name, &creds(4)).unwrap();
    }
    assert_eq!(
        store.list_accounts().unwrap(),
        ["Alice", "alice", "bob", "zed", "émile"]
    );
    assert_eq!(store.count_accounts().unwrap(), 5);

    assert!(store.set_credentials("alice", &creds(5)).unwrap());
    assert_eq!(store.credentials("alice").unwrap(), Some(creds(5)));
    assert!(!store.set_credentials("nobody", &creds(5)).unwrap());
    assert!(!store.account_exists("nobody").unwrap());

    for name in ["Alice", "alice", "bob", "zed", "émile"] {
        assert!(store.delete_account(name).unwrap());
    }
    assert!(!store.delete_account("alice").unwrap());
    assert_eq!(store.list_accounts().unwrap(), Vec::<String>::new());
    assert_eq!(store.count_accounts().unwrap(), 0);
}

/// Deleting an account takes its roster, pending requests and offline queue with it,
/// and nobody else's.
pub fn account_deletion_cascades(store: &dyn Store) {
    for name in ["carol", "dave"] {
        store.create_account(name, &creds(1)).unwrap();
        store
            .set_roster_item(name, &entry("x@example.com", SubState::To, &["G"]))
            .unwrap();
        store
            .add_pending_in(name, "y@example.com", b"<presence type='subscribe'/>")
            .unwrap();
        assert!(store.store_offline(name, b"<message/>", 10).unwrap());
        assert!(
            store
                .block(name, &["z@example.com".to_owned()], 10)
                .unwrap()
        );
        let q = private_query("storage:bookmarks", name);
        store
            .set_private_xml(name, &[("storage:bookmarks".into(), q.to_bytes(""))], QUOTA)
            .unwrap();
        store
            .set_vcard(name, &vcard(name).to_bytes(""), Some("f00d"))
            .unwrap();
    }

    assert!(store.delete_account("carol").unwrap());
    assert!(!store.account_exists("carol").unwrap());
    assert_eq!(store.credentials("carol").unwrap(), None);
    assert!(!store.delete_account("carol").unwrap());

    // Re-created under the same name, the account starts from nothing: the old rows are
    // gone, not merely hidden behind the missing account.
    store.create_account("carol", &creds(2)).unwrap();
    assert_eq!(store.roster("carol").unwrap(), (0, Vec::new()));
    assert_eq!(store.roster_item("carol", "x@example.com").unwrap(), None);
    assert_eq!(store.pending_in("carol").unwrap(), Vec::new());
    assert_eq!(store.count_offline("carol").unwrap(), 0);
    assert_eq!(store.take_offline("carol").unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!(store.blocklist("carol").unwrap(), Vec::<String>::new());
    assert_eq!(
        store.private_xml("carol", "storage:bookmarks").unwrap(),
        None
    );
    assert_eq!(store.vcard("carol").unwrap(), None);
    assert_eq!(store.vcard_avatar("carol").unwrap(), VcardAvatar::NoVcard);

    let (version, items) = store.roster("dave").unwrap();
    assert!(version > 0);
    assert_eq!(items, [entry("x@example.com", SubState::To, &["G"])]);
    assert_eq!(store.pending_in("dave").unwrap().len(), 1);
    assert_eq!(store.count_offline("dave").unwrap(), 1);
    assert_eq!(store.blocklist("dave").unwrap(), ["z@example.com"]);
    assert_eq!(
        store.private_xml("dave", "storage:bookmarks").unwrap(),
        Some(private_query("storage:bookmarks", "dave"))
    );
    assert_eq!(store.vcard("dave").unwrap(), Some(vcard("dave")));

    for name in ["carol", "dave"] {
        assert!(store.delete_account(name).unwrap());
    }
}

/// Set, replace, remove, ordering, groups, and the version counter.
pub fn roster(store: &dyn Store) {
    store.create_account("romeo", &creds(1)).unwrap();
    store.create_account("mercutio", &creds(1)).unwrap();
    assert_eq!(store.roster("romeo").unwrap(), (0, Vec::new()));

    // Groups come back sorted and without duplicates.
    let mut juliet = entry(
        "juliet@capulet.lit",
        SubState::None,
        &["Friends", "Capulets"],
    );
    juliet.groups.push("Friends".to_owned());
    let v1 = store.set_roster_item("romeo", &juliet).unwrap();
    assert!(v1 > 0);
    let stored = entry(
        "juliet@capulet.lit",
        SubState::None,
        &["Capulets", "Friends"],
    );
    assert_eq!(
        store.roster_item("romeo", "juliet@capulet.lit").unwrap(),
        Some(stored.clone())
    );

    let benvolio = entry("benvolio@montague.lit", SubState::From, &[]);
    let v2 = store.set_roster_item("romeo", &benvolio).unwrap();
    assert!(v2 > v1);
    assert_eq!(
        store.roster("romeo").unwrap(),
        (v2, vec![benvolio.clone(), stored])
    );

    // Replacing overwrites every field, groups included.
    let replaced = RosterEntry {
        jid: "juliet@capulet.lit".to_owned(),
        name: Some("Juliet".to_owned()),
        subscription: SubState::Both,
        ask_out: true,
        approved: true,
        groups: vec!["Lovers".to_owned()],
    };
    let v3 = store.set_roster_item("romeo", &replaced).unwrap();
    assert!(v3 > v2);
    assert_eq!(
        store.roster_item("romeo", "juliet@capulet.lit").unwrap(),
        Some(replaced)
    );
    let cleared = entry("juliet@capulet.lit", SubState::To, &[]);
    let v4 = store.set_roster_item("romeo", &cleared).unwrap();
    assert!(v4 > v3);
    assert_eq!(
        store.roster_item("romeo", "juliet@capulet.lit").unwrap(),
        Some(cleared)
    );

    // Every subscription state round-trips.
    let mut v = v4;
    for sub in [SubState::None, SubState::To, SubState::From, SubState::Both] {
        let e = entry("tybalt@capulet.lit", sub, &[]);
        let next = store.set_roster_item("romeo", &e).unwrap();
        assert!(next > v);
        v = next;
        assert_eq!(
            store.roster_item("romeo", "tybalt@capulet.lit").unwrap(),
            Some(e)
        );
    }

    // Removing nothing changes nothing, the version included.
    assert_eq!(
        store
            .remove_roster_item("romeo", "nobody@example.com")
            .unwrap(),
        None
    );
    assert_eq!(store.roster("romeo").unwrap().0, v);
    let removed = store
        .remove_roster_item("romeo", "juliet@capulet.lit")
        .unwrap();
    assert!(removed.is_some_and(|r| r > v));
    assert_eq!(
        store.roster_item("romeo", "juliet@capulet.lit").unwrap(),
        None
    );
    assert_eq!(
        store
            .remove_roster_item("romeo", "juliet@capulet.lit")
            .unwrap(),
        None
    );
    let (version, items) = store.roster("romeo").unwrap();
    assert_eq!(Some(version), removed);
    let jids: Vec<&str> = items.iter().map(|e| e.jid.as_str()).collect();
    assert_eq!(jids, ["benvolio@montague.lit", "tybalt@capulet.lit"]);

    // Re-adding a removed item starts with no leftover groups.
    let bare = entry("juliet@capulet.lit", SubState::None, &[]);
    store.set_roster_item("romeo", &bare).unwrap();
    assert_eq!(
        store.roster_item("romeo", "juliet@capulet.lit").unwrap(),
        Some(bare)
    );

    // Versions and items are per user.
    assert_eq!(store.roster("mercutio").unwrap(), (0, Vec::new()));
    assert_eq!(
        store
            .roster_item("mercutio", "benvolio@montague.lit")
            .unwrap(),
        None
    );

    // No account: writes fail, reads answer empty.
    let missing = store.set_roster_item("nobody", &benvolio);
    assert!(
        matches!(missing, Err(StorageError::NotFound)),
        "{missing:?}"
    );
    assert!(!store.account_exists("nobody").unwrap());
    assert_eq!(store.roster("nobody").unwrap(), (0, Vec::new()));
    assert_eq!(
        store
            .remove_roster_item("nobody", "benvolio@montague.lit")
            .unwrap(),
        None
    );

    for name in ["romeo", "mercutio"] {
        assert!(store.delete_account(name).unwrap());
    }
}

/// RFC 6121 3.1.3: inbound requests wait, with their stanza, whether or not the contact
/// is in the roster.
pub fn pending_subscriptions(store: &dyn Store) {
    store.create_account("juliet", &creds(1)).unwrap();
    assert_eq!(store.pending_in("juliet").unwrap(), Vec::new());

    // Stanzas are opaque bytes, not necessarily UTF-8.
    let binary = [0u8, 0xff, b'<', 0xc3];
    store
        .add_pending_in("juliet", "romeo@montague.lit", b"first")
        .unwrap();
    store
        .add_pending_in("juliet", "nurse@capulet.lit", &binary)
        .unwrap();
    store
        .add_pending_in("juliet", "romeo@montague.lit", b"second")
        .unwrap();
    assert_eq!(
        store.pending_in("juliet").unwrap(),
        [
            ("nurse@capulet.lit".to_owned(), binary.to_vec()),
            ("romeo@montague.lit".to_owned(), b"second".to_vec()),
        ]
    );
    // Pending requests are independent of the roster.
    assert_eq!(store.roster("juliet").unwrap(), (0, Vec::new()));

    assert!(
        store
            .remove_pending_in("juliet", "romeo@montague.lit")
            .unwrap()
    );
    assert!(
        !store
            .remove_pending_in("juliet", "romeo@montague.lit")
            .unwrap()
    );
    assert_eq!(
        store.pending_in("juliet").unwrap(),
        [("nurse@capulet.lit".to_owned(), binary.to_vec())]
    );

    let missing = store.add_pending_in("nobody", "romeo@montague.lit", b"x");
    assert!(
        matches!(missing, Err(StorageError::NotFound)),
        "{missing:?}"
    );
    assert_eq!(store.pending_in("nobody").unwrap(), Vec::new());
    assert!(
        !store
            .remove_pending_in("nobody", "romeo@montague.lit")
            .unwrap()
    );

    assert!(store.delete_account("juliet").unwrap());
}

/// Arrival order, the per-user cap, and take-removes.
/// A cap on pending requests: a repeat from a pending JID always replaces its request; a
/// new JID past the cap is not stored.
pub fn pending_subscriptions_capped(store: &dyn Store) {
    store.create_account("capulet", &creds(3)).unwrap();
    for k in 0..3 {
        assert!(
            store
                .add_pending_in_capped("capulet", &format!("c{k}@x.lit"), b"p", 3)
                .unwrap()
        );
    }
    assert!(
        !store
            .add_pending_in_capped("capulet", "c3@x.lit", b"p", 3)
            .unwrap()
    );
    assert!(
        store
            .add_pending_in_capped("capulet", "c1@x.lit", b"again", 3)
            .unwrap()
    );
    let pending = store.pending_in("capulet").unwrap();
    assert_eq!(pending.len(), 3);
    assert_eq!(pending[1], ("c1@x.lit".to_owned(), b"again".to_vec()));
    assert!(store.remove_pending_in("capulet", "c0@x.lit").unwrap());
    assert!(
        store
            .add_pending_in_capped("capulet", "c3@x.lit", b"p", 3)
            .unwrap()
    );
    assert!(matches!(
        store.add_pending_in_capped("nobody", "c@x.lit", b"p", 3),
        Err(StorageError::NotFound)
    ));
}

pub fn offline(store: &dyn Store) {
    store.create_account("benvolio", &creds(1)).unwrap();
    store.create_account("tybalt", &creds(1)).unwrap();
    assert_eq!(store.count_offline("benvolio").unwrap(), 0);
    assert_eq!(
        store.take_offline("benvolio").unwrap(),
        Vec::<Vec<u8>>::new()
    );

    let msgs: Vec<Vec<u8>> = (1..=4)
        .map(|i| format!("<message>{i}</message>").into())
        .collect();
    for m in &msgs[..3] {
        assert!(store.store_offline("benvolio", m, 3).unwrap());
    }
    // Full: refused, not stored, and nothing else is displaced.
    assert!(!store.store_offline("benvolio", &msgs[3], 3).unwrap());
    assert_eq!(store.count_offline("benvolio").unwrap(), 3);
    // The cap is the caller's per call; a larger one admits more.
    assert!(store.store_offline("benvolio", &msgs[3], 4).unwrap());
    // Another user's queue is separate, and a cap of 0 stores nothing.
    assert!(store.store_offline("tybalt", b"other", 1).unwrap());
    assert!(!store.store_offline("tybalt", b"other", 0).unwrap());

    assert_eq!(store.take_offline("benvolio").unwrap(), msgs);
    assert_eq!(store.count_offline("benvolio").unwrap(), 0);
    assert_eq!(
        store.take_offline("benvolio").unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(store.count_offline("tybalt").unwrap(), 1);

    // A queue emptied and refilled keeps arrival order.
    assert!(store.store_offline("benvolio", b"late-1", 10).unwrap());
    assert!(store.store_offline("benvolio", b"late-2", 10).unwrap());
    assert_eq!(
        store.take_offline("benvolio").unwrap(),
        [b"late-1".to_vec(), b"late-2".to_vec()]
    );

    offline_paging(store);

    let missing = store.store_offline("nobody", b"x", 10);
    assert!(
        matches!(missing, Err(StorageError::NotFound)),
        "{missing:?}"
    );
    assert_eq!(store.count_offline("nobody").unwrap(), 0);
    assert_eq!(store.take_offline("nobody").unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!(store.offline_page("nobody", 100).unwrap(), Vec::new());
    assert_eq!(store.remove_offline("nobody", &[1, 2]).unwrap(), 0);

    for name in ["benvolio", "tybalt"] {
        assert!(store.delete_account(name).unwrap());
    }
}

/// Pages sized in bytes, read without removing; removal of exactly the ids delivered
/// (the server's delivery path, issue 8 item 13). `benvolio` starts with an empty queue.
fn offline_paging(store: &dyn Store) {
    let stanzas = |page: &[crate::OfflineMessage]| -> Vec<Vec<u8>> {
        page.iter().map(|m| m.stanza.clone()).collect()
    };
    for m in ["aa", "bbb", "cccc"] {
        assert!(store.store_offline("benvolio", m.as_bytes(), 10).unwrap());
    }
    // As many as fit, oldest first; the oldest even when it alone is too large.
    let page = store.offline_page("benvolio", 5).unwrap();
    assert_eq!(stanzas(&page), [b"aa".to_vec(), b"bbb".to_vec()]);
    assert_eq!(
        stanzas(&store.offline_page("benvolio", 1).unwrap()),
        [b"aa".to_vec()]
    );
    assert_eq!(store.offline_page("benvolio", usize::MAX).unwrap().len(), 3);
    assert_eq!(store.offline_page("benvolio", 0).unwrap().len(), 1);
    // Reading removes nothing.
    assert_eq!(store.count_offline("benvolio").unwrap(), 3);

    // A message arriving between the read and the removal stays, in order.
    assert!(store.store_offline("benvolio", b"ddd", 10).unwrap());
    let ids: Vec<u64> = page.iter().map(|m| m.id).collect();
    assert_eq!(store.remove_offline("benvolio", &ids).unwrap(), 2);
    assert_eq!(store.remove_offline("benvolio", &ids).unwrap(), 0);
    // Ids are per user: removing benvolio's leaves tybalt's queue alone.
    assert_eq!(store.count_offline("tybalt").unwrap(), 1);
    let rest = store.offline_page("benvolio", usize::MAX).unwrap();
    assert_eq!(stanzas(&rest), [b"cccc".to_vec(), b"ddd".to_vec()]);
    assert_ne!(rest[0].id, rest[1].id);
    let ids: Vec<u64> = rest.iter().map(|m| m.id).collect();
    assert_eq!(store.remove_offline("benvolio", &ids).unwrap(), 2);
    assert_eq!(store.count_offline("benvolio").unwrap(), 0);
}

/// Changes recorded for a running server: a removal takes the credentials at once, is
/// never downgraded to a password change, and goes with the account (issue 8, item 14).
pub fn account_changes(store: &dyn Store) {
    assert_eq!(store.account_changes().unwrap(), Vec::new());
    for name in ["mercutio", "paris"] {
        store.create_account(name, &creds(1)).unwrap();
    }
    assert!(
        !store
            .record_change("nobody", AccountChange::Removed)
            .unwrap()
    );

    assert!(
        store
            .record_change("paris", AccountChange::PasswordChanged)
            .unwrap()
    );
    assert_eq!(store.credentials("paris").unwrap(), Some(creds(1)));
    assert!(
        store
            .record_change("mercutio", AccountChange::Removed)
            .unwrap()
    );
    // No login any more, but the name stays taken until the removal is complete.
    assert_eq!(store.credentials("mercutio").unwrap(), None);
    assert!(store.account_exists("mercutio").unwrap());
    let dup = store.create_account("mercutio", &creds(2));
    assert!(matches!(dup, Err(StorageError::AlreadyExists)), "{dup:?}");
    assert!(
        store
            .record_change("mercutio", AccountChange::PasswordChanged)
            .unwrap()
    );
    assert_eq!(
        store.account_changes().unwrap(),
        [
            ("mercutio".to_owned(), AccountChange::Removed),
            ("paris".to_owned(), AccountChange::PasswordChanged)
        ]
    );

    // Clearing a different change than the one recorded leaves it.
    store.clear_change("paris", AccountChange::Removed).unwrap();
    store
        .clear_change("paris", AccountChange::PasswordChanged)
        .unwrap();
    assert_eq!(store.account_changes().unwrap().len(), 1);
    // Deleting the account takes its record along.
    assert!(store.delete_account("mercutio").unwrap());
    assert_eq!(store.account_changes().unwrap(), Vec::new());
    assert!(store.delete_account("paris").unwrap());
}

/// A removed account's JID leaves every other roster and every pending request, and
/// only those rosters' versions move.
pub fn contact_removed_everywhere(store: &dyn Store) {
    for name in ["balthasar", "gregory", "sampson", "abram"] {
        store.create_account(name, &creds(1)).unwrap();
    }
    let gone = "abram@verona.lit";
    store
        .set_roster_item("gregory", &entry(gone, SubState::Both, &["Friends"]))
        .unwrap();
    let v_greg = store
        .set_roster_item("gregory", &entry("x@verona.lit", SubState::To, &[]))
        .unwrap();
    let v_samp = store
        .set_roster_item("sampson", &entry(gone, SubState::From, &[]))
        .unwrap();
    store
        .add_pending_in("balthasar", gone, b"<presence/>")
        .unwrap();
    store
        .add_pending_in("balthasar", "y@verona.lit", b"<presence/>")
        .unwrap();
    let (v_balt, _) = store.roster("balthasar").unwrap();

    let changed = store.remove_contact_everywhere(gone).unwrap();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(changed[0].0, "gregory");
    assert!(changed[0].1 > v_greg);
    assert_eq!(changed[1].0, "sampson");
    assert!(changed[1].1 > v_samp);
    let (v, items) = store.roster("gregory").unwrap();
    assert_eq!(v, changed[0].1);
    assert_eq!(items, [entry("x@verona.lit", SubState::To, &[])]);
    assert_eq!(store.roster("sampson").unwrap().1, Vec::new());
    assert_eq!(
        store.pending_in("balthasar").unwrap(),
        [("y@verona.lit".to_owned(), b"<presence/>".to_vec())]
    );
    assert_eq!(store.roster("balthasar").unwrap().0, v_balt);
    assert_eq!(store.remove_contact_everywhere(gone).unwrap(), Vec::new());

    for name in ["balthasar", "gregory", "sampson", "abram"] {
        assert!(store.delete_account(name).unwrap());
    }
}

/// Generous enough for every section but the one about the quota.
const QUOTA: PrivateQuota = PrivateQuota {
    max_bytes: 1 << 20,
    max_namespaces: 100,
};

/// `<query xmlns='jabber:iq:private'><x xmlns='NS'>TEXT</x></query>`.
fn private_query(namespace: &str, text: &str) -> Element {
    Element::new("query", "jabber:iq:private")
        .with_child(Element::new("x", namespace).with_text(text))
}

/// `<vCard xmlns='vcard-temp'><FN>NAME</FN></vCard>`.
fn vcard(name: &str) -> Element {
    Element::new("vCard", "vcard-temp").with_child(Element::new("FN", "vcard-temp").with_text(name))
}

/// XEP-0049: stored per namespace, read back as stored (nested namespaces included),
/// replaced whole, bounded in bytes and namespaces with the replaced rows not counted,
/// all or nothing, for accounts only.
pub fn private_xml(store: &dyn Store) {
    store.create_account("hamlet", &creds(1)).unwrap();
    store.create_account("horatio", &creds(2)).unwrap();
    assert_eq!(store.private_xml("hamlet", "exodus:prefs").unwrap(), None);

    // Nested elements in other namespaces and attributes survive the round trip.
    let mut prefs = private_query("exodus:prefs", "Hamlet");
    prefs.append_child(
        Element::new("extra", "exodus:prefs")
            .with_attr("a", "1 & 2")
            .with_child(Element::new("inner", "urn:other").with_text("<x>")),
    );
    let bookmarks = private_query("storage:bookmarks", "room");
    let items = [
        ("exodus:prefs".to_owned(), prefs.to_bytes("")),
        ("storage:bookmarks".to_owned(), bookmarks.to_bytes("")),
    ];
    assert_eq!(
        store.set_private_xml("hamlet", &items, QUOTA).unwrap(),
        PrivateWrite::Stored
    );
    assert_eq!(
        store.private_xml("hamlet", "exodus:prefs").unwrap(),
        Some(prefs.clone())
    );
    assert_eq!(
        store.private_xml("hamlet", "storage:bookmarks").unwrap(),
        Some(bookmarks)
    );
    // Another account sees nothing of it.
    assert_eq!(store.private_xml("horatio", "exodus:prefs").unwrap(), None);

    // A set replaces the namespace's fragment whole.
    let newer = private_query("storage:bookmarks", "other room");
    store
        .set_private_xml(
            "hamlet",
            &[("storage:bookmarks".into(), newer.to_bytes(""))],
            QUOTA,
        )
        .unwrap();
    assert_eq!(
        store.private_xml("hamlet", "storage:bookmarks").unwrap(),
        Some(newer)
    );

    // The quota: what the account holds plus what a set adds, less what it replaces.
    let held = prefs.to_bytes("").len()
        + private_query("storage:bookmarks", "other room")
            .to_bytes("")
            .len();
    let tight = PrivateQuota {
        max_bytes: held,
        max_namespaces: 2,
    };
    let same_size = private_query("storage:bookmarks", "other mood");
    assert_eq!(
        store
            .set_private_xml(
                "hamlet",
                &[("storage:bookmarks".into(), same_size.to_bytes(""))],
                tight
            )
            .unwrap(),
        PrivateWrite::Stored,
        "a replacement of the same size fits exactly"
    );
    let bigger = private_query("storage:bookmarks", "other rooms");
    assert_eq!(
        store
            .set_private_xml(
                "hamlet",
                &[("storage:bookmarks".into(), bigger.to_bytes(""))],
                tight
            )
            .unwrap(),
        PrivateWrite::OverBytes
    );
    let third = private_query("gajim:prefs", "");
    let roomy = PrivateQuota {
        max_bytes: 1 << 20,
        max_namespaces: 2,
    };
    // All or nothing: the first item would fit, the second namespace does not.
    let both = [
        ("storage:bookmarks".to_owned(), bigger.to_bytes("")),
        ("gajim:prefs".to_owned(), third.to_bytes("")),
    ];
    assert_eq!(
        store.set_private_xml("hamlet", &both, roomy).unwrap(),
        PrivateWrite::OverNamespaces
    );
    assert_eq!(
        store.private_xml("hamlet", "storage:bookmarks").unwrap(),
        Some(same_size),
        "a refused set changed nothing"
    );
    assert_eq!(store.private_xml("hamlet", "gajim:prefs").unwrap(), None);

    assert!(matches!(
        store.set_private_xml("nobody", &items, QUOTA),
        Err(StorageError::NotFound)
    ));
    for name in ["hamlet", "horatio"] {
        assert!(store.delete_account(name).unwrap());
    }
}

/// XEP-0054: one vCard per account, replaced whole; its avatar hash read on its own;
/// a set reports the avatar it replaced.
pub fn vcards(store: &dyn Store) {
    store.create_account("juliet", &creds(1)).unwrap();
    assert_eq!(store.vcard("juliet").unwrap(), None);
    assert_eq!(store.vcard_avatar("juliet").unwrap(), VcardAvatar::NoVcard);

    let mut card = vcard("Juliet Capulet");
    card.append_child(
        Element::new("PHOTO", "vcard-temp")
            .with_child(Element::new("TYPE", "vcard-temp").with_text("image/png"))
            .with_child(Element::new("BINVAL", "vcard-temp").with_text("iVBORw0KGgo=")),
    );
    let before = store
        .set_vcard("juliet", &card.to_bytes(""), Some("0123abcd"))
        .unwrap();
    assert_eq!(before, VcardAvatar::NoVcard);
    assert_eq!(store.vcard("juliet").unwrap(), Some(card));
    assert_eq!(
        store.vcard_avatar("juliet").unwrap(),
        VcardAvatar::Sha1("0123abcd".into())
    );

    let plain = vcard("J.");
    let before = store
        .set_vcard("juliet", &plain.to_bytes(""), None)
        .unwrap();
    assert_eq!(before, VcardAvatar::Sha1("0123abcd".into()));
    assert_eq!(store.vcard("juliet").unwrap(), Some(plain));
    assert_eq!(store.vcard_avatar("juliet").unwrap(), VcardAvatar::NoPhoto);
    // An empty vCard is a vCard.
    let empty = Element::new("vCard", "vcard-temp");
    assert_eq!(
        store
            .set_vcard("juliet", &empty.to_bytes(""), None)
            .unwrap(),
        VcardAvatar::NoPhoto
    );
    assert_eq!(store.vcard("juliet").unwrap(), Some(empty));

    assert!(matches!(
        store.set_vcard("nobody", b"<vCard xmlns='vcard-temp'/>", None),
        Err(StorageError::NotFound)
    ));
    assert_eq!(store.vcard_avatar("nobody").unwrap(), VcardAvatar::NoVcard);
    assert!(store.delete_account("juliet").unwrap());
}

/// Distinct, deterministic credentials per `seed`, including the extreme iteration
/// count a backend must carry without loss.
/// Block, unblock, unblock all, ordering, and who blocks whom.
pub fn blocklist(store: &dyn Store) {
    let jids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    store.create_account("mercutio", &creds(1)).unwrap();
    store.create_account("paris", &creds(1)).unwrap();
    assert_eq!(store.blocklist("mercutio").unwrap(), Vec::<String>::new());
    // Every form XEP-0191 6 matches on is kept as given; sorted bytewise.
    let forms = ["tybalt@capulet.lit", "capulet.lit", "a@b.lit/r", "b.lit/r"];
    assert!(store.block("mercutio", &jids(&forms), 10).unwrap());
    assert_eq!(
        store.blocklist("mercutio").unwrap(),
        ["a@b.lit/r", "b.lit/r", "capulet.lit", "tybalt@capulet.lit"]
    );
    // Blocking again is not an error and adds nothing.
    assert!(
        store
            .block("mercutio", &jids(&["capulet.lit", "capulet.lit"]), 10)
            .unwrap()
    );
    assert_eq!(store.blocklist("mercutio").unwrap().len(), 4);
    assert!(store.block("paris", &jids(&["capulet.lit"]), 10).unwrap());

    let who = store
        .blocking_any(
            &jids(&["paris", "mercutio", "nobody"]),
            &jids(&["x@capulet.lit", "capulet.lit"]),
        )
        .unwrap();
    assert_eq!(who, ["mercutio", "paris"]);
    let who = store
        .blocking_any(&jids(&["paris", "mercutio"]), &jids(&["a@b.lit/r"]))
        .unwrap();
    assert_eq!(who, ["mercutio"]);

    store
        .unblock("mercutio", &jids(&["capulet.lit", "never@blocked.lit"]))
        .unwrap();
    assert_eq!(
        store.blocklist("mercutio").unwrap(),
        ["a@b.lit/r", "b.lit/r", "tybalt@capulet.lit"]
    );
    store.unblock_all("mercutio").unwrap();
    assert_eq!(store.blocklist("mercutio").unwrap(), Vec::<String>::new());
    assert_eq!(store.blocklist("paris").unwrap(), ["capulet.lit"]);
    assert!(matches!(
        store.block("nobody", &jids(&["x@y.lit"]), 10),
        Err(StorageError::NotFound)
    ));
    for name in ["mercutio", "paris"] {
        assert!(store.delete_account(name).unwrap());
    }
}

/// The cap counts what the list would hold: JIDs held already do not count twice, and a
/// block past it stores none of its JIDs.
pub fn blocklist_capped(store: &dyn Store) {
    let jids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    store.create_account("friar", &creds(1)).unwrap();
    assert!(
        store
            .block("friar", &jids(&["a@x.lit", "b@x.lit"]), 3)
            .unwrap()
    );
    assert!(
        !store
            .block("friar", &jids(&["c@x.lit", "d@x.lit"]), 3)
            .unwrap()
    );
    assert_eq!(store.blocklist("friar").unwrap(), ["a@x.lit", "b@x.lit"]);
    assert!(
        store
            .block("friar", &jids(&["a@x.lit", "c@x.lit"]), 3)
            .unwrap()
    );
    assert_eq!(store.blocklist("friar").unwrap().len(), 3);
    assert!(store.block("friar", &jids(&["b@x.lit"]), 3).unwrap());
    assert!(!store.block("friar", &jids(&["d@x.lit"]), 3).unwrap());
    assert!(store.delete_account("friar").unwrap());
}

pub fn creds(seed: u8) -> StoredCredentials {
    let keys = |len: usize, iterations: u32| ScramKeys {
        salt: vec![seed; 16],
        iterations,
        stored_key: vec![seed.wrapping_add(1); len],
        server_key: vec![seed.wrapping_add(2); len],
    };
    StoredCredentials {
        sha1: keys(20, 4096 + u32::from(seed)),
        sha256: keys(32, u32::MAX - u32::from(seed)),
    }
}

fn entry(jid: &str, subscription: SubState, groups: &[&str]) -> RosterEntry {
    RosterEntry {
        jid: jid.to_owned(),
        name: None,
        subscription,
        ask_out: false,
        approved: false,
        groups: groups.iter().map(|&g| g.to_owned()).collect(),
    }
}
