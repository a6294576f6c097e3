//! Server Dialback (XEP-0220) with keys per XEP-0185. (In progress.)
