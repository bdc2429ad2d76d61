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

/// A routing tree node, with its parent's settings inherited where it sets none
/// (Alertmanager's semantics).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The receiver of alerts this node takes; None at the root means "only the rules'
    /// `notify` lists deliver".
    pub receiver: Option<String>,
    /// Labels grouping alerts into one notification; `["..."]` groups by every label.
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before its first notification.
    pub group_wait: Duration,
    /// How long a group waits before notifying about alerts added to it.
    pub group_interval: Duration,
    /// How long before a notification of alerts still firing is sent again.
    pub repeat_interval: Duration,
    /// Whether resolved alerts are notified.
    pub send_resolved: bool,
    pub matchers: Vec<Matcher>,
    /// Go on matching sibling routes after this one matched.
    pub continue_: bool,
    pub routes: Vec<Route>,
}

impl Default for Route {
    fn default() -> Route {
        Route {
            receiver: None,
            group_by: vec!["alertname".into()],
            group_wait: Duration::from_secs(1),
            group_interval: Duration::from_secs(60),
            repeat_interval: Duration::from_secs(4 * 3600),
            send_resolved: true,
            matchers: Vec::new(),
            continue_: false,
            routes: Vec::new(),
        }
    }
}

/// Mute alerts matching `target` while an alert matching `source` fires with the same values
/// of the `equal` labels.
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

/// Where alerts go: `receivers:`, `route:` and `inhibit_rules:`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyConfig {
    pub receivers: Vec<Receiver>,
    pub route: Route,
    pub inhibit_rules: Vec<InhibitRule>,
}

impl NotifyConfig {
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }

    /// The receiver names, in the order configured.
    pub fn names(&self) -> Vec<&str> {
        self.receivers.iter().map(|r| r.name.as_str()).collect()
    }

    /// Problems with the receivers the rules name in `notify` (`(rule, name)` pairs): an
    /// unknown name is an error once any receiver is configured; with none configured it is
    /// one warning (the embedded default rules name `discord` and `email`).
    pub fn check_rule_receivers<'a>(
        &self,
        used: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (Vec<String>, Vec<String>) {
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let mut unknown: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (rule, name) in used {
            if self.receiver(name).is_none() {
                unknown.entry(name).or_default().push(rule);
            }
        }
        if unknown.is_empty() {
            return (errors, warnings);
        }
        if self.receivers.is_empty() {
            let names: Vec<&str> = unknown.keys().copied().collect();
            warnings.push(format!(
                "the rules name the receivers {} but the config defines no `receivers:`, so \
                 alerts reach no one; see the README's \"Notifications\"",
                names.join(", ")
            ));
            return (errors, warnings);
        }
        for (name, rules) in unknown {
            errors.push(format!(
                "notify: unknown receiver `{name}` (named by rule{} {}); receivers: {}",
                if rules.len() == 1 { "" } else { "s" },
                rules.join(", "),
                self.names().join(", ")
            ));
        }
        (errors, warnings)
    }
}

use crate::notify::matcher::Matcher;

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReceiver {
    name: Option<String>,
    discord: Option<RawDiscord>,
    email: Option<RawEmail>,
    alertmanager: Option<RawAlertmanager>,
    webhook: Option<RawWebhook>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawDiscord {
    webhook_url: Option<String>,
    webhook_url_file: Option<String>,
    username: Option<String>,
    avatar_url: Option<String>,
    mention: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    ca_file: Option<String>,
    insecure_skip_verify: Option<bool>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    smtp: Option<RawSmtp>,
    from: Option<String>,
    to: Option<OneOrMany>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    urls: Option<Vec<String>>,
    resend_interval: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<String>,
    url_file: Option<String>,
    max_alerts: Option<usize>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    repeat_interval: Option<String>,
    send_resolved: Option<bool>,
    matchers: Option<Vec<String>>,
    #[serde(rename = "continue")]
    continue_: Option<bool>,
    routes: Option<Vec<RawRoute>>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInhibit {
    source_matchers: Option<Vec<String>>,
    target_matchers: Option<Vec<String>>,
    equal: Option<Vec<String>>,
}

use serde::Deserialize;

use super::Validator;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Validator {
    /// `receivers:`, `route:` and `inhibit_rules:`, validated together: names unique, every
    /// receiver a route names defined, secrets found.
    pub(super) fn notify(
        &mut self,
        receivers: Vec<RawReceiver>,
        route: Option<RawRoute>,
        inhibit: Vec<RawInhibit>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> NotifyConfig {
        let mut out = NotifyConfig::default();
        // Every name given, valid receiver or not: a route naming a broken receiver is not
        // also "unknown", and a name given twice is caught either way.
        let mut names: Vec<String> = Vec::new();
        for (i, r) in receivers.into_iter().enumerate() {
            let base = format!("receivers[{i}]");
            if let Some(n) = r.name.clone().filter(|n| !n.trim().is_empty()) {
                if names.contains(&n) {
                    self.at(
                        &format!("{base}.name"),
                        format!("{base}.name: receiver `{n}` is defined twice"),
                    );
                    continue;
                }
                names.push(n);
            }
            if let Some(rc) = self.receiver(&base, r, env) {
                out.receivers.push(rc);
            }
        }
        out.route = match route {
            Some(r) => self.route("route", r, &Route::default(), &names, true),
            None => Route::default(),
        };
        for (i, raw) in inhibit.into_iter().enumerate() {
            let base = format!("inhibit_rules[{i}]");
            let source = self.matchers(&format!("{base}.source_matchers"), raw.source_matchers);
            let target = self.matchers(&format!("{base}.target_matchers"), raw.target_matchers);
            if source.is_empty() || target.is_empty() {
                self.at(
                    &base,
                    format!("{base}: needs source_matchers and target_matchers"),
                );
                continue;
            }
            out.inhibit_rules.push(InhibitRule {
                source,
                target,
                equal: raw.equal.unwrap_or_default(),
            });
        }
        out
    }

    fn matchers(&mut self, path: &str, raw: Option<Vec<String>>) -> Vec<Matcher> {
        let mut out = Vec::new();
        for (i, m) in raw.unwrap_or_default().iter().enumerate() {
            match Matcher::parse(m) {
                Ok(m) => out.push(m),
                Err(e) => self.at(
                    &crate::yamlloc::join_index(path, i),
                    format!("{path}[{i}]: {e}"),
                ),
            }
        }
        out
    }

    fn route(
        &mut self,
        path: &str,
        raw: RawRoute,
        parent: &Route,
        names: &[String],
        root: bool,
    ) -> Route {
        let mut r = Route {
            receiver: raw.receiver.clone().or_else(|| parent.receiver.clone()),
            group_by: raw
                .group_by
                .clone()
                .unwrap_or_else(|| parent.group_by.clone()),
            send_resolved: raw.send_resolved.unwrap_or(parent.send_resolved),
            continue_: raw.continue_.unwrap_or(false),
            matchers: self.matchers(&format!("{path}.matchers"), raw.matchers.clone()),
            ..parent.clone()
        };
        r.routes = Vec::new();
        if root && (raw.continue_.is_some() || raw.matchers.is_some()) {
            self.at(
                path,
                format!("{path}: the root route matches every alert: no matchers or continue"),
            );
        }
        if let Some(name) = &raw.receiver {
            if !names.iter().any(|n| n == name) {
                self.at(
                    &format!("{path}.receiver"),
                    format!(
                        "{path}.receiver: unknown receiver `{name}`; receivers: {}",
                        if names.is_empty() {
                            "none defined".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
            }
        } else if !root && r.receiver.is_none() {
            self.at(
                path,
                format!("{path}: no receiver (set receiver here or on a parent route)"),
            );
        }
        for (k, v, slot) in [
            ("group_wait", &raw.group_wait, &mut r.group_wait),
            ("group_interval", &raw.group_interval, &mut r.group_interval),
            (
                "repeat_interval",
                &raw.repeat_interval,
                &mut r.repeat_interval,
            ),
        ] {
            if let Some(s) = v {
                let p = format!("{path}.{k}");
                let min = if k == "group_wait" {
                    Duration::ZERO
                } else {
                    Duration::from_secs(1)
                };
                if let Some(d) = self.duration(&p, s) {
                    if d < min {
                        self.at(&p, format!("{p}: must be at least 1s"));
                    } else {
                        *slot = d;
                    }
                }
            }
        }
        for (i, l) in r.group_by.iter().enumerate() {
            let ok = l == "..."
                || (!l.is_empty()
                    && l.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            if !ok {
                let p = format!("{path}.group_by");
                self.at(
                    &crate::yamlloc::join_index(&p, i),
                    format!("{p}[{i}]: invalid label name {l:?}"),
                );
            }
        }
        for (i, child) in raw.routes.unwrap_or_default().into_iter().enumerate() {
            let p = format!("{path}.routes[{i}]");
            let c = self.route(&p, child, &r, names, false);
            r.routes.push(c);
        }
        r
    }

    /// `${NAME}` references replaced by the environment; an unset one is an error that names
    /// the variable (never a value).
    fn expand(
        &mut self,
        path: &str,
        s: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                self.at(path, format!("{path}: unterminated ${{ in {path}"));
                return None;
            };
            let var = &after[..end];
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.at(
                    path,
                    format!("{path}: invalid environment variable name {var:?}"),
                );
                return None;
            }
            match env(var) {
                Some(v) => out.push_str(&v),
                None => {
                    self.at(
                        path,
                        format!("{path}: environment variable {var} is not set"),
                    );
                    return None;
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// A secret from `key` (with `${ENV}` references) or `key_file`; exactly one of them.
    fn secret(
        &mut self,
        base: &str,
        key: &str,
        value: Option<String>,
        file: Option<String>,
        required: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Secret> {
        let path = format!("{base}.{key}");
        let fpath = format!("{base}.{key}_file");
        match (value, file) {
            (Some(_), Some(_)) => {
                self.at(
                    &fpath,
                    format!("{fpath}: set {key} or {key}_file, not both"),
                );
                None
            }
            (Some(v), None) => {
                let v = self.expand(&path, &v, env)?;
                if v.trim().is_empty() {
                    self.at(&path, format!("{path}: empty"));
                    return None;
                }
                Some(Secret::new(v))
            }
            (None, Some(f)) => {
                let f = self.expand(&fpath, &f, env)?;
                match std::fs::read_to_string(&f) {
                    Ok(text) => {
                        let v = text.trim_end_matches(['\n', '\r']).to_string();
                        if v.trim().is_empty() {
                            self.at(&fpath, format!("{fpath}: the secret file {f} is empty"));
                            return None;
                        }
                        Some(Secret::new(v))
                    }
                    Err(e) => {
                        self.at(
                            &fpath,
                            format!("{fpath}: cannot read the secret file {f}: {e}"),
                        );
                        None
                    }
                }
            }
            (None, None) => {
                if required {
                    self.at(base, format!("{base}: {key} or {key}_file is required"));
                }
                None
            }
        }
    }

    /// An http(s) URL; `what` says where it came from. Secrets are checked without echoing them.
    fn url(&mut self, path: &str, url: &str, secret: bool) -> bool {
        let shown = |u: &str| {
            if secret {
                "<secret>".to_string()
            } else {
                format!("{u:?}")
            }
        };
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => true,
            Ok(u) => {
                self.at(
                    path,
                    format!(
                        "{path}: expected an http:// or https:// URL with a host, got {} (scheme {})",
                        shown(url),
                        u.scheme()
                    ),
                );
                false
            }
            Err(e) => {
                self.at(path, format!("{path}: not a URL ({e}): {}", shown(url)));
                false
            }
        }
    }

    fn plain(
        &mut self,
        path: &str,
        v: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<String> {
        v.and_then(|v| self.expand(path, &v, env))
    }

    fn timeout(&mut self, path: &str, v: Option<String>) -> Duration {
        v.and_then(|s| self.duration_min(path, &s, Duration::ZERO, "10s"))
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    fn receiver(
        &mut self,
        base: &str,
        r: RawReceiver,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Receiver> {
        let name = match r.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => {
                self.at(base, format!("{base}: a receiver needs a name"));
                return None;
            }
        };
        let kinds = [
            r.discord.is_some(),
            r.email.is_some(),
            r.alertmanager.is_some(),
            r.webhook.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if kinds != 1 {
            self.at(
                base,
                format!(
                    "{base}: receiver `{name}` needs exactly one of discord, email, alertmanager, webhook"
                ),
            );
            return None;
        }
        let before = self.problems.len();
        let kind = if let Some(d) = r.discord {
            let p = format!("{base}.discord");
            let url = self.secret(
                &p,
                "webhook_url",
                d.webhook_url,
                d.webhook_url_file,
                true,
                env,
            );
            if let Some(u) = &url {
                self.url(&format!("{p}.webhook_url"), u.expose(), true);
            }
            let avatar_url = self.plain(&format!("{p}.avatar_url"), d.avatar_url, env);
            if let Some(a) = &avatar_url {
                self.url(&format!("{p}.avatar_url"), a, false);
            }
            ReceiverKind::Discord(DiscordConfig {
                webhook_url: url.unwrap_or_else(|| Secret::new("")),
                username: self.plain(&format!("{p}.username"), d.username, env),
                avatar_url,
                mention: self.plain(&format!("{p}.mention"), d.mention, env),
            })
        } else if let Some(e) = r.email {
            let p = format!("{base}.email");
            let s = e.smtp.unwrap_or_default();
            let sp = format!("{p}.smtp");
            let host = self
                .plain(&format!("{sp}.host"), s.host, env)
                .unwrap_or_default();
            if host.trim().is_empty() {
                self.at(&sp, format!("{sp}.host is required"));
            }
            let port = s.port.unwrap_or(587);
            let tls = match s.tls.as_deref() {
                None if port == 465 => SmtpTls::Tls,
                None => SmtpTls::Starttls,
                Some("none") => SmtpTls::None,
                Some("starttls") => SmtpTls::Starttls,
                Some("tls") => SmtpTls::Tls,
                Some(o) => {
                    self.at(
                        &format!("{sp}.tls"),
                        format!("{sp}.tls: expected none, starttls or tls; got {o:?}"),
                    );
                    SmtpTls::Starttls
                }
            };
            let password = self.secret(&sp, "password", s.password, s.password_file, false, env);
            let username = self.plain(&format!("{sp}.username"), s.username, env);
            if password.is_some() && username.is_none() {
                self.at(&sp, format!("{sp}: a password needs a username"));
            }
            let ca_file = self
                .plain(&format!("{sp}.ca_file"), s.ca_file, env)
                .map(PathBuf::from);
            if let Some(f) = &ca_file {
                if let Err(err) = std::fs::metadata(f) {
                    self.at(
                        &format!("{sp}.ca_file"),
                        format!("{sp}.ca_file: cannot read {}: {err}", f.display()),
                    );
                }
            }
            let from = self
                .plain(&format!("{p}.from"), e.from, env)
                .unwrap_or_default();
            if from.trim().is_empty() {
                self.at(&p, format!("{p}.from is required"));
            }
            let to: Vec<String> = match e.to {
                None => Vec::new(),
                Some(OneOrMany::One(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
                Some(OneOrMany::Many(v)) => v,
            };
            let mut to_ok = Vec::new();
            for (i, t) in to.into_iter().enumerate() {
                if let Some(t) =
                    self.expand(&crate::yamlloc::join_index(&format!("{p}.to"), i), &t, env)
                {
                    if !t.trim().is_empty() {
                        to_ok.push(t);
                    }
                }
            }
            if to_ok.is_empty() {
                let tp = format!("{p}.to");
                self.at(&tp, format!("{tp}: at least one recipient is required"));
            }
            ReceiverKind::Email(EmailConfig {
                smtp: SmtpConfig {
                    host,
                    port,
                    tls,
                    username,
                    password,
                    ca_file,
                    insecure_skip_verify: s.insecure_skip_verify.unwrap_or(false),
                    timeout: self.timeout(&format!("{sp}.timeout"), s.timeout),
                },
                from,
                to: to_ok,
            })
        } else if let Some(a) = r.alertmanager {
            let p = format!("{base}.alertmanager");
            let urls = a.urls.unwrap_or_default();
            if urls.is_empty() {
                self.at(
                    &p,
                    format!("{p}.urls: at least one Alertmanager URL is required"),
                );
            }
            let mut ok = Vec::new();
            for (i, u) in urls.iter().enumerate() {
                let up = crate::yamlloc::join_index(&format!("{p}.urls"), i);
                if let Some(u) = self.expand(&up, u, env) {
                    if self.url(&up, &u, false) {
                        ok.push(u.trim_end_matches('/').to_string());
                    }
                }
            }
            let resend_interval = a
                .resend_interval
                .and_then(|s| {
                    self.duration_min(
                        &format!("{p}.resend_interval"),
                        &s,
                        Duration::from_secs(1),
                        "1m",
                    )
                })
                .unwrap_or(Duration::from_secs(60));
            ReceiverKind::Alertmanager(AlertmanagerConfig {
                urls: ok,
                resend_interval,
                timeout: self.timeout(&format!("{p}.timeout"), a.timeout),
            })
        } else if let Some(w) = r.webhook {
            let p = format!("{base}.webhook");
            let url = self.secret(&p, "url", w.url, w.url_file, true, env);
            if let Some(u) = &url {
                self.url(&format!("{p}.url"), u.expose(), true);
            }
            ReceiverKind::Webhook(WebhookConfig {
                url: url.unwrap_or_else(|| Secret::new("")),
                max_alerts: w.max_alerts.unwrap_or(0),
                timeout: self.timeout(&format!("{p}.timeout"), w.timeout),
            })
        } else {
            return None;
        };
        (self.problems.len() == before).then_some(Receiver { name, kind })
    }
}
