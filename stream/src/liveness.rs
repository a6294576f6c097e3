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

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: LivenessConfig = LivenessConfig {
        ping_interval: Duration::from_secs(61),
        ping_timeout: Duration::from_secs(20),
        whitespace_keepalive: Duration::from_secs(90),
    };

    #[test]
    fn silence_brings_a_ping_then_a_timeout_unless_input_arrives() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        assert_eq!(l.deadline(&CFG, t0, t0), t0 + CFG.ping_interval);
        let at = t0 + CFG.ping_interval;
        let due = l.on_timer(&CFG, at, t0, t0);
        assert!(due.ping && !due.timed_out && !due.keepalive);
        l.ping_sent(at);
        assert_eq!(l.deadline(&CFG, t0, t0), at + CFG.ping_timeout);
        // Input in the instant the ping went out counts as an answer.
        let mut answered = Liveness::default();
        answered.ping_sent(at);
        assert_eq!(
            answered.on_timer(&CFG, at + CFG.ping_timeout, at, t0),
            Due::default()
        );
        let due = l.on_timer(&CFG, at + CFG.ping_timeout, t0, t0);
        assert_eq!(
            due,
            Due {
                timed_out: true,
                ..Due::default()
            }
        );
    }

    #[test]
    fn keepalive_follows_our_silence_only() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        let read = t0 + CFG.whitespace_keepalive;
        assert_eq!(l.deadline(&CFG, read, t0), t0 + CFG.whitespace_keepalive);
        let due = l.on_timer(&CFG, t0 + CFG.whitespace_keepalive, read, t0);
        assert!(due.keepalive && !due.ping);
    }
}
