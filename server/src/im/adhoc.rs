//! XEP-0050 ad-hoc commands on the server's JID, with the XEP-0133 service
//! administration commands an operator runs from a client: add a user, delete users,
//! change a password, list or count online users, send an announcement.
//!
//! Only local sessions of the accounts in `[admin] admins` see and run them
//! (XEP-0133 §3: "the service MUST verify that the requester is an administrator");
//! everyone else is told the list is empty and gets `<forbidden/>` on execute. Every
//! command is a single form: the first `execute` returns the form, the submission
//! (`complete` or `execute` with a submitted form) runs it. No command keeps session
//! state between the two steps, so a `sessionid` is issued for the client's sake and a
//! submission is judged on its own data alone.

use std::fmt::Write as _;
use std::sync::Arc;

use hydrant_proto::{
    Element, ErrorType, Iq, IqType, StanzaError, StanzaErrorCondition as Cond, ns,
};
use tracing::{info, warn};

use crate::router::Router;
use crate::router::origin::Origin;
use crate::router::sessions::LocalSession;

/// XEP-0050's namespace (also the disco node listing the commands).
pub const COMMANDS: &str = "http://jabber.org/protocol/commands";
/// XEP-0133's FORM_TYPE.
const ADMIN: &str = "http://jabber.org/protocol/admin";

/// The commands, in the order listed: (node, name).
const LIST: &[(&str, &str)] = &[
    (ADD_USER, "Add a User"),
    (DELETE_USER, "Delete a User"),
    (CHANGE_PASSWORD, "Change User Password"),
    (ONLINE_LIST, "Get List of Online Users"),
    (ONLINE_NUM, "Get Number of Online Users"),
    (ANNOUNCE, "Send Announcement to Online Users"),
];
const ADD_USER: &str = "http://jabber.org/protocol/admin#add-user";
const DELETE_USER: &str = "http://jabber.org/protocol/admin#delete-user";
const CHANGE_PASSWORD: &str = "http://jabber.org/protocol/admin#change-user-password";
const ONLINE_LIST: &str = "http://jabber.org/protocol/admin#get-online-users-list";
const ONLINE_NUM: &str = "http://jabber.org/protocol/admin#get-online-users-num";
const ANNOUNCE: &str = "http://jabber.org/protocol/admin#announce";

/// `[admin]` limits.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Bare JIDs of the server's administrators (`[admin] admins`).
    pub admins: Arc<[String]>,
    /// Accounts one delete-user command may name.
    pub max_accounts_per_command: usize,
    /// Online users one list shows at most (whatever `max_items` asks).
    pub max_listed: usize,
    /// Longest announcement (subject and text together), in bytes.
    pub max_announcement_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            admins: Arc::from(Vec::new()),
            max_accounts_per_command: 100,
            max_listed: 1000,
            max_announcement_bytes: 4096,
        }
    }
}

/// A submitted form's values by field var.
struct Submitted(Vec<(String, Vec<String>)>);

impl Submitted {
    fn of(cmd: &Element) -> Option<Submitted> {
        let x = cmd.get_child("x", ns::DATA_FORMS)?;
        if x.attr("type") != Some("submit") {
            return None;
        }
        let fields = x
            .children()
            .filter(|f| f.is("field", ns::DATA_FORMS))
            .filter_map(|f| {
                let var = f.attr("var")?.to_owned();
                let values = f
                    .children()
                    .filter(|v| v.is("value", ns::DATA_FORMS))
                    .map(Element::text)
                    .collect();
                Some((var, values))
            })
            .collect();
        Some(Submitted(fields))
    }

    fn all(&self, var: &str) -> &[String] {
        self.0
            .iter()
            .find(|(v, _)| v == var)
            .map_or(&[], |(_, vals)| vals.as_slice())
    }

    fn one(&self, var: &str) -> Option<&str> {
        self.all(var)
            .first()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }
}

/// What a submission did: the note shown to the admin, and a result form if any.
struct Outcome {
    error: bool,
    note: String,
    form: Option<Element>,
}

impl Outcome {
    fn ok(note: impl Into<String>) -> Self {
        Outcome {
            error: false,
            note: note.into(),
            form: None,
        }
    }
    fn err(note: impl Into<String>) -> Self {
        Outcome {
            error: true,
            note: note.into(),
            form: None,
        }
    }
}

fn field(var: &str, kind: &str, label: &str, required: bool) -> Element {
    let mut f = Element::new("field", ns::DATA_FORMS)
        .with_attr("var", var)
        .with_attr("type", kind)
        .with_attr("label", label);
    if required {
        f.append_child(Element::new("required", ns::DATA_FORMS));
    }
    f
}

fn form_type() -> Element {
    Element::new("field", ns::DATA_FORMS)
        .with_attr("var", "FORM_TYPE")
        .with_attr("type", "hidden")
        .with_child(Element::new("value", ns::DATA_FORMS).with_text(ADMIN))
}

/// The form a command asks for (None: it needs no input).
fn form_of(node: &str) -> Option<Element> {
    let x = Element::new("x", ns::DATA_FORMS)
        .with_attr("type", "form")
        .with_child(form_type());
    Some(match node {
        ADD_USER => x
            .with_child(Element::new("title", ns::DATA_FORMS).with_text("Adding a User"))
            .with_child(field(
                "accountjid",
                "jid-single",
                "The Jabber ID for the account to be added",
                true,
            ))
            .with_child(field(
                "password",
                "text-private",
                "The password for this account",
                true,
            ))
            .with_child(field(
                "password-verify",
                "text-private",
                "Retype password",
                true,
            )),
        DELETE_USER => x
            .with_child(Element::new("title", ns::DATA_FORMS).with_text("Deleting a User"))
            .with_child(field(
                "accountjids",
                "jid-multi",
                "The Jabber ID(s) to delete",
                true,
            )),
        CHANGE_PASSWORD => x
            .with_child(Element::new("title", ns::DATA_FORMS).with_text("Changing a User Password"))
            .with_child(field(
                "accountjid",
                "jid-single",
                "The Jabber ID for this account",
                true,
            ))
            .with_child(field(
                "password",
                "text-private",
                "The password for this account",
                true,
            )),
        ONLINE_LIST => {
            let mut max = field(
                "max_items",
                "list-single",
                "Maximum number of items to show",
                false,
            );
            for v in ["25", "50", "75", "100", "150", "200", "none"] {
                max.append_child(
                    Element::new("option", ns::DATA_FORMS)
                        .with_attr("label", v)
                        .with_child(Element::new("value", ns::DATA_FORMS).with_text(v)),
                );
            }
            x.with_child(
                Element::new("title", ns::DATA_FORMS).with_text("Getting List of Online Users"),
            )
            .with_child(max)
        }
        ANNOUNCE => x
            .with_child(Element::new("title", ns::DATA_FORMS).with_text("Making an Announcement"))
            .with_child(field("subject", "text-single", "Subject", false))
            .with_child(field("announcement", "text-multi", "Announcement", true)),
        _ => return None,
    })
}

fn session_id() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source is available");
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

impl Router {
    /// Whether this origin may see and run the administration commands.
    fn is_admin(&self, origin: Origin<'_>) -> bool {
        origin.session().is_some_and(|me| {
            let bare = me.info.jid.to_bare();
            self.cfg.admin.admins.iter().any(|a| a == bare.as_str())
        })
    }

    /// disco#items on the commands node (XEP-0050 §2.2): what this requester may run.
    pub(crate) fn adhoc_items(&self, origin: Origin<'_>, iq: &Iq) {
        let mut q = Element::new("query", ns::DISCO_ITEMS).with_attr("node", COMMANDS);
        if self.is_admin(origin) {
            for (node, name) in LIST {
                q.append_child(
                    Element::new("item", ns::DISCO_ITEMS)
                        .with_attr("jid", self.domain.as_str())
                        .with_attr("node", *node)
                        .with_attr("name", *name),
                );
            }
        }
        self.reply(origin, &iq.result(Some(q)).to_element(ns::CLIENT));
    }

    /// disco#info on one command's node (XEP-0050 §2.3); false when `node` is none.
    pub(crate) fn adhoc_info(&self, origin: Origin<'_>, iq: &Iq, node: &str) -> bool {
        let Some((_, name)) = LIST.iter().find(|(n, _)| *n == node) else {
            return false;
        };
        if !self.is_admin(origin) {
            self.iq_error(origin, iq, StanzaError::new(Cond::Forbidden));
            return true;
        }
        let q = Element::new("query", ns::DISCO_INFO)
            .with_attr("node", node)
            .with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "automation")
                    .with_attr("type", "command-node")
                    .with_attr("name", *name),
            )
            .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", COMMANDS))
            .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::DATA_FORMS));
        self.reply(origin, &iq.result(Some(q)).to_element(ns::CLIENT));
        true
    }

    /// `<command/>` to the server (XEP-0050 §3).
    pub(crate) async fn adhoc_command(&self, origin: Origin<'_>, iq: Iq) {
        let Some(cmd) = iq.payload.clone() else {
            return;
        };
        if iq.kind != IqType::Set {
            return self.iq_error(origin, &iq, StanzaError::new(Cond::BadRequest));
        }
        let Some(node) = cmd
            .attr("node")
            .filter(|n| LIST.iter().any(|(l, _)| l == n))
        else {
            return self.iq_error(origin, &iq, StanzaError::new(Cond::ItemNotFound));
        };
        let Some(me) = origin.session().filter(|_| self.is_admin(origin)) else {
            return self.iq_error(origin, &iq, StanzaError::new(Cond::Forbidden));
        };
        let node = node.to_owned();
        let sid = cmd.attr("sessionid").map_or_else(session_id, str::to_owned);
        let action = cmd.attr("action").unwrap_or("execute");
        let reply = |status: &str| {
            Element::new("command", COMMANDS)
                .with_attr("node", node.as_str())
                .with_attr("sessionid", sid.as_str())
                .with_attr("status", status)
        };
        match action {
            "cancel" => {
                self.reply(
                    origin,
                    &iq.result(Some(reply("canceled"))).to_element(ns::CLIENT),
                );
                return;
            }
            "execute" | "complete" | "next" => {}
            _ => {
                // XEP-0050 §4.6: <bad-request/> with <malformed-action/>.
                let err = StanzaError::new(Cond::BadRequest)
                    .with_type(ErrorType::Modify)
                    .with_app(Element::new("malformed-action", COMMANDS));
                return self.iq_error(origin, &iq, err);
            }
        }
        let submitted = Submitted::of(&cmd);
        let needs_form = form_of(&node);
        if let (Some(form), None) = (&needs_form, &submitted) {
            // The first step: the form, to be completed.
            let el = reply("executing")
                .with_child(
                    Element::new("actions", COMMANDS)
                        .with_attr("execute", "complete")
                        .with_child(Element::new("complete", COMMANDS)),
                )
                .with_child(form.clone());
            self.reply(origin, &iq.result(Some(el)).to_element(ns::CLIENT));
            return;
        }
        let data = submitted.unwrap_or(Submitted(Vec::new()));
        let admin = me.info.jid.to_bare().to_string();
        let out = self.run_command(me, &admin, &node, &data).await;
        let mut el = reply("completed").with_child(
            Element::new("note", COMMANDS)
                .with_attr("type", if out.error { "error" } else { "info" })
                .with_text(out.note),
        );
        if let Some(form) = out.form {
            el.append_child(form);
        }
        self.reply(origin, &iq.result(Some(el)).to_element(ns::CLIENT));
    }

    async fn run_command(
        &self,
        me: &Arc<LocalSession>,
        admin: &str,
        node: &str,
        data: &Submitted,
    ) -> Outcome {
        match node {
            ADD_USER => self.cmd_add_user(admin, data).await,
            DELETE_USER => self.cmd_delete_users(admin, data).await,
            CHANGE_PASSWORD => self.cmd_change_password(admin, data).await,
            ONLINE_LIST => self.cmd_online_list(data),
            ONLINE_NUM => {
                let n = self.online_users().len();
                let mut out = Outcome::ok(format!("{n} user(s) online"));
                out.form = Some(
                    Element::new("x", ns::DATA_FORMS)
                        .with_attr("type", "result")
                        .with_child(form_type())
                        .with_child(
                            field(
                                "onlineusersnum",
                                "text-single",
                                "The number of online users",
                                false,
                            )
                            .with_child(
                                Element::new("value", ns::DATA_FORMS).with_text(n.to_string()),
                            ),
                        ),
                );
                out
            }
            ANNOUNCE => self.cmd_announce(me, data),
            _ => Outcome::err("no such command"),
        }
    }

    /// A local account's username from a submitted JID, or why not.
    fn local_user(&self, jid: &str) -> Result<String, String> {
        let bare =
            hydrant_proto::BareJid::new(jid.trim()).map_err(|_| format!("{jid}: not a JID"))?;
        if bare.domain().as_str() != self.domain {
            return Err(format!("{jid}: not an account of {}", self.domain));
        }
        bare.node()
            .map(|n| n.as_str().to_owned())
            .ok_or_else(|| format!("{jid}: no username"))
    }

    /// `accountjid` (a local account) and an acceptable `password` from a form.
    fn account_and_password<'d>(
        &self,
        data: &'d Submitted,
    ) -> Result<(&'d str, String, &'d str), Outcome> {
        let (Some(jid), Some(pw)) = (data.one("accountjid"), data.all("password").first()) else {
            return Err(Outcome::err("accountjid and password are required"));
        };
        let user = self.local_user(jid).map_err(Outcome::err)?;
        if pw.chars().count() < self.cfg.min_password_length {
            return Err(Outcome::err(format!(
                "passwords have at least {} characters",
                self.cfg.min_password_length
            )));
        }
        Ok((jid, user, pw.as_str()))
    }

    async fn cmd_add_user(&self, admin: &str, data: &Submitted) -> Outcome {
        let (jid, user, pw) = match self.account_and_password(data) {
            Ok(v) => v,
            Err(e) => return e,
        };
        if data.all("password-verify").first().map(String::as_str) != Some(pw) {
            return Outcome::err("the passwords do not match");
        }
        if self.account_exists(&user).await {
            return Outcome::err(format!("{jid} exists already"));
        }
        match self.set_password(&user, pw, true).await {
            Ok(()) => {
                info!(admin, user, "account added by an administrator (XEP-0133)");
                Outcome::ok(format!("{user}@{} added", self.domain))
            }
            Err(e) => {
                warn!(error = %e, user, "add-user failed");
                Outcome::err(format!("{jid}: {e}"))
            }
        }
    }

    async fn cmd_delete_users(&self, admin: &str, data: &Submitted) -> Outcome {
        let jids = data.all("accountjids");
        if jids.is_empty() {
            return Outcome::err("accountjids is required");
        }
        if jids.len() > self.cfg.admin.max_accounts_per_command {
            return Outcome::err(format!(
                "at most {} accounts per command",
                self.cfg.admin.max_accounts_per_command
            ));
        }
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for jid in jids {
            let user = match self.local_user(jid) {
                Ok(u) => u,
                Err(e) => {
                    failed.push(e);
                    continue;
                }
            };
            match self.remove_account(&user).await {
                Ok(true) => {
                    info!(
                        admin,
                        user, "account deleted by an administrator (XEP-0133)"
                    );
                    done.push(jid.trim().to_owned());
                }
                Ok(false) => failed.push(format!("{jid}: no such account")),
                Err(e) => failed.push(format!("{jid}: {e}")),
            }
        }
        let mut note = format!(
            "deleted: {}",
            if done.is_empty() {
                "none".into()
            } else {
                done.join(", ")
            }
        );
        if !failed.is_empty() {
            let _ = write!(note, "; failed: {}", failed.join("; "));
        }
        Outcome {
            error: !failed.is_empty(),
            note,
            form: None,
        }
    }

    async fn cmd_change_password(&self, admin: &str, data: &Submitted) -> Outcome {
        let (jid, user, pw) = match self.account_and_password(data) {
            Ok(v) => v,
            Err(e) => return e,
        };
        match self.set_password(&user, pw, false).await {
            Ok(()) => {
                info!(
                    admin,
                    user, "password changed by an administrator (XEP-0133)"
                );
                // The account's sessions end with <reset/> (RFC 6120 4.9.3.16), as after
                // any password change made elsewhere.
                self.password_changed(&user, None);
                Outcome::ok(format!("password of {jid} changed"))
            }
            Err(hydrant_storage::StorageError::NotFound) => {
                Outcome::err(format!("{jid}: no such account"))
            }
            Err(e) => Outcome::err(format!("{jid}: {e}")),
        }
    }

    /// Online accounts (bare JIDs with at least one session), sorted.
    fn online_users(&self) -> Vec<String> {
        let mut users = self.sessions.usernames();
        users.sort();
        users
            .into_iter()
            .map(|u| format!("{u}@{}", self.domain))
            .collect()
    }

    fn cmd_online_list(&self, data: &Submitted) -> Outcome {
        let asked = data
            .one("max_items")
            .and_then(|m| m.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let max = asked.min(self.cfg.admin.max_listed);
        let users = self.online_users();
        let mut f = field(
            "onlineuserjids",
            "jid-multi",
            "The list of all online users",
            false,
        );
        for u in users.iter().take(max) {
            f.append_child(Element::new("value", ns::DATA_FORMS).with_text(u.as_str()));
        }
        let mut out = Outcome::ok(format!(
            "{} user(s) online{}",
            users.len(),
            if users.len() > max {
                format!(", the first {max} listed")
            } else {
                String::new()
            }
        ));
        out.form = Some(
            Element::new("x", ns::DATA_FORMS)
                .with_attr("type", "result")
                .with_child(form_type())
                .with_child(f),
        );
        out
    }

    fn cmd_announce(&self, me: &Arc<LocalSession>, data: &Submitted) -> Outcome {
        // A text-multi value is one <value/> per line (XEP-0004 3.3).
        let text = data.all("announcement").join("\n");
        if text.trim().is_empty() {
            return Outcome::err("announcement is required");
        }
        let subject = data.one("subject").unwrap_or("Announcement").to_owned();
        if text.len() + subject.len() > self.cfg.admin.max_announcement_bytes {
            return Outcome::err(format!(
                "at most {} bytes",
                self.cfg.admin.max_announcement_bytes
            ));
        }
        let msg = Element::new("message", ns::CLIENT)
            .with_attr("from", self.domain.as_str())
            .with_attr("type", "headline")
            .with_child(Element::new("subject", ns::CLIENT).with_text(subject))
            .with_child(Element::new("body", ns::CLIENT).with_text(text));
        let mut sent = 0usize;
        for user in self.sessions.usernames() {
            for s in self.sessions.of_user(&user) {
                let mut m = msg.clone();
                m.set_attr("to", s.info.jid.to_string());
                if s.send(&m) {
                    sent += 1;
                }
            }
        }
        info!(admin = %me.info.jid, sent, "announcement sent (XEP-0133)");
        Outcome::ok(format!("sent to {sent} session(s)"))
    }
}
