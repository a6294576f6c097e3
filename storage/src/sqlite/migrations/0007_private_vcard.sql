-- hydrant schema, version 7: XEP-0049 private XML storage and XEP-0054 vCards.
--
-- Both belong to the account and go with it (ON DELETE CASCADE). What is stored is XML
-- hydrant serialised itself after parsing and checking it (every namespace declared on
-- the stored element), so reading it back never meets input a client wrote.
-- Same dialect rules as 0001.

-- One row per namespace (XEP-0049 2: data is stored and retrieved by the namespace of
-- its root element). `xml` is a `<query xmlns='jabber:iq:private'/>` holding every
-- element of that namespace the last set carried: what a get returns, as is.
CREATE TABLE private_xml (
    username  TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    xml       BLOB NOT NULL,
    PRIMARY KEY (username, namespace)
);

-- The account's vCard (XEP-0054) and, for XEP-0153, the lower-case hex SHA-1 of the
-- decoded PHOTO/BINVAL, computed once when the vCard is set (NULL: no photo), so a
-- presence broadcast reads a short column instead of decoding the photo.
CREATE TABLE vcards (
    username   TEXT NOT NULL PRIMARY KEY REFERENCES accounts (username) ON DELETE CASCADE,
    vcard      BLOB NOT NULL,
    photo_sha1 TEXT
);
