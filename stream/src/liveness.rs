//! Timers of an established stream: XEP-0199 pings after silence and whitespace
//! keepalives, folded into one deadline so the connection's task sleeps on a single
//! `sleep_until` (no timer per concern).

use std::time::Duration;

use tokio::time::Instant;

/// How often and how patiently the peer is checked.
#[derive(Debug, Clone, Copy)]
pub struct LivenessConfig {
    /// Silence from the peer after which we ping it.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered (by any input) before the stream times out.
    pub ping_timeout: Duration,
    /// Silence from us after which we send a single space.
    pub whitespace_keepalive: Duration,
}

/// What is due when the deadline from [`Liveness::deadline`] passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Due {
    /// The ping went unanswered: end the stream with `<connection-timeout/>`; nothing
    /// else is due.
    pub timed_out: bool,
    /// Send a ping and report it with [`Liveness::ping_sent`].
    pub ping: bool,
    /// Send a single space and count it as a write. RFC 6120 4.6.1 allows whitespace
    /// between stanzas; it keeps NATs and dead-peer detection honest without costing the
    /// peer a parse.
    pub keepalive: bool,
}

/// Per-stream ping state: only the instant of the outstanding ping.
#[derive(Debug, Default)]
pub struct Liveness {
    ping_sent: Option<Instant>,
}

impl Liveness {
    /// The next instant something may be due, given the connection's last read and write.
    pub fn deadline(
        &self,
        cfg: &LivenessConfig,
        last_read: Instant,
        last_write: Instant,
    ) -> Instant {
        let keepalive = last_write + cfg.whitespace_keepalive;
        let ping = match self.ping_sent {
            Some(at) => at + cfg.ping_timeout,
            None => last_read + cfg.ping_interval,
        };
        keepalive.min(ping)
    }

    /// What is due at `now`.
    pub fn on_timer(
        &mut self,
        cfg: &LivenessConfig,
        now: Instant,
        last_read: Instant,
        last_write: Instant,
    ) -> Due {
        let mut due = Due::default();
        if let Some(at) = self.ping_sent {
            // `>=`: a read in the very instant the ping went out came after it (had it
            // come before, no ping would have been due); clocks need not tick between.
            if last_read >= at {
                self.ping_sent = None;
            } else if now >= at + cfg.ping_timeout {
                due.timed_out = true;
                return due;
            }
        } else if now >= last_read + cfg.ping_interval {
            due.ping = true;
        }
        due.keepalive = now >= last_write + cfg.whitespace_keepalive;
        due
    }

    /// A ping went out at `at`.
    pub fn ping_sent(&mut self, at: Instant) {
        self.ping_sent = Some(at);
    }
}
