//! `receivers:`, `route:` and `inhibit_rules:`: where alerts go. The types here are what the
//! notifiers are built from; parsing and validation are in this file too.

use std::path::PathBuf;
use std::time::Duration;

/// A secret value (a webhook URL, a password): read from `${ENV}` or a `*_file`. It never
/// prints: `Debug` and `Display` show `<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// A Discord channel webhook (execute-webhook API).
#[derive(Debug, Clone, PartialEq)]
pub struct DiscordConfig {
    /// `https://discord.com/api/webhooks/<id>/<token>`; the token makes it a secret.
    pub webhook_url: Secret,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    /// Put in the message content (e.g. `<@&123>`, `<@456>`, `@here`) for critical alerts only,
    /// and allowed through `allowed_mentions`.
    pub mention: Option<String>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (loopback relays only).
    None,
    /// Upgrade with STARTTLS (required: a server that does not offer it is an error).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

/// An SMTP server.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Extra CA certificate (PEM) to trust, besides the system's web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (testing only).
    pub insecure_skip_verify: bool,
    /// Connect, send and quit within this time.
    pub timeout: Duration,
}

/// Mail through SMTP.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    pub smtp: SmtpConfig,
    /// `Name <addr>` or `addr`.
    pub from: String,
    pub to: Vec<String>,
}

/// One or more Alertmanagers (an HA cluster gets every alert at each member).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerConfig {
    /// Base URLs, e.g. `http://am-1:9093`; alerts go to `<url>/api/v2/alerts`.
    pub urls: Vec<String>,
    /// How often firing alerts are sent again (Prometheus's resend delay, 1m).
    pub resend_interval: Duration,
    pub timeout: Duration,
}

/// A JSON POST in Alertmanager's webhook payload format.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub url: Secret,
    /// At most this many alerts per payload (0: no limit); the rest are counted in
    /// `truncatedAlerts`, as Alertmanager does.
    pub max_alerts: usize,
    pub timeout: Duration,
}

/// What a receiver is.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    Discord(DiscordConfig),
    Email(EmailConfig),
    Alertmanager(AlertmanagerConfig),
    Webhook(WebhookConfig),
}

impl ReceiverKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiverKind::Discord(_) => "discord",
            ReceiverKind::Email(_) => "email",
            ReceiverKind::Alertmanager(_) => "alertmanager",
            ReceiverKind::Webhook(_) => "webhook",
        }
    }
}

/// A named receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
}
