//! Multi-host connection strings and the choice of the writable primary.
//!
//! `--store` takes libpq's convention for a replicated cluster:
//! `postgres://user@host1:5432,host2:5433/db?target_session_attrs=read-write`.
//! The driver parses one host only, so the host list is split here and each
//! host becomes its own set of connect options; everything else in the URL
//! (user, password, database, TLS settings) applies to every host.
//!
//! Cairn writes, so it needs the one host that accepts writes: hosts are
//! tried in order and the first that is neither in recovery
//! (`pg_is_in_recovery()`) nor read-only (`transaction_read_only`) wins —
//! what libpq does for `target_session_attrs=read-write` and `primary`
//! together. `any`, `read-only`, `standby` and `prefer-standby` are refused:
//! they would let the store land on a standby. A URL with one host and no
//! `target_session_attrs` is used as it is, as before multi-host support.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use super::errors::PostgresError;

/// The query parameter that names the kind of session wanted.
const TARGET_SESSION_ATTRS: &str = "target_session_attrs";
/// The values of [`TARGET_SESSION_ATTRS`] that ask for a writable primary.
const WRITABLE_TARGETS: [&str; 2] = ["read-write", "primary"];
/// Hosts accepted in one URL at most.
pub(crate) const HOSTS_MAX: usize = 16;

/// One host of a connection string.
#[derive(Clone, Debug)]
pub(crate) struct Host {
    /// `host:port` as written (the port filled in), for messages.
    pub(crate) name: String,
    /// The connect options of this host alone.
    pub(crate) options: PgConnectOptions,
}

/// The hosts of a connection string, in the order they are tried.
#[derive(Clone, Debug)]
pub(crate) struct HostList {
    pub(crate) hosts: Vec<Host>,
    /// Whether only a writable primary may be used: several hosts, or
    /// `target_session_attrs` given.
    pub(crate) primary_required: bool,
}

/// What one host turned out to be when probed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HostRole {
    /// It accepts writes.
    Primary,
    /// It is in recovery (a standby) or its sessions are read-only.
    ReadOnly,
}

impl HostList {
    /// Splits `url` into its hosts; see the module documentation.
    pub(crate) fn parse(url: &str) -> Result<HostList, PostgresError> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| invalid("expected postgres://user@host:port/database"))?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (user_info, host_list) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let (tail, target) = take_target_session_attrs(tail)?;
        let entries: Vec<&str> = host_list.split(',').collect();
        if entries.len() > HOSTS_MAX {
            return Err(invalid(format!(
                "{} hosts in the host list; at most {HOSTS_MAX}",
                entries.len()
            )));
        }
        let mut hosts = Vec::with_capacity(entries.len());
        for (position, entry) in entries.iter().enumerate() {
            if entries.len() > 1 && entry.is_empty() {
                return Err(invalid(format!(
                    "host {} of the host list is empty",
                    position + 1
                )));
            }
            check_host_entry(entry)?;
            let single = format!("postgres://{user_info}{entry}{tail}");
            let options: PgConnectOptions =
                single
                    .parse()
                    .map_err(|error: sqlx::Error| PostgresError::Url {
                        message: format!("host {:?}: {error}", entry),
                        source: Some(error),
                    })?;
            let name = format!("{}:{}", options.get_host(), options.get_port());
            hosts.push(Host { name, options });
        }
        Ok(HostList {
            primary_required: hosts.len() > 1 || target.is_some(),
            hosts,
        })
    }

    /// The names of all hosts, for messages.
    pub(crate) fn names(&self) -> String {
        self.hosts
            .iter()
            .map(|host| host.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The position of the first host, in order, that accepts writes, each
    /// probed within `timeout`; or why none does, host by host.
    pub(crate) async fn select_primary(&self, timeout: Duration) -> Result<usize, String> {
        let mut reasons = Vec::with_capacity(self.hosts.len());
        for (position, host) in self.hosts.iter().enumerate() {
            match tokio::time::timeout(timeout, probe(&host.options)).await {
                Ok(Ok(HostRole::Primary)) => return Ok(position),
                Ok(Ok(HostRole::ReadOnly)) => {
                    reasons.push(format!("{} is a standby or read-only", host.name))
                }
                Ok(Err(error)) => reasons.push(format!("{}: {error}", host.name)),
                Err(_) => reasons.push(format!(
                    "{}: no answer within {} ms",
                    host.name,
                    timeout.as_millis()
                )),
            }
        }
        Err(reasons.join("; "))
    }

    /// Applies `session` to every host's options (settings of Cairn's own
    /// sessions: timeouts, application name).
    pub(crate) fn map_options(
        mut self,
        session: impl Fn(PgConnectOptions) -> PgConnectOptions,
    ) -> HostList {
        for host in &mut self.hosts {
            host.options = session(host.options.clone());
        }
        self
    }
}

/// Connects to one host and asks whether it accepts writes.
pub(crate) async fn probe(options: &PgConnectOptions) -> Result<HostRole, sqlx::Error> {
    let mut connection = options.connect().await?;
    let role = role_of(&mut connection).await;
    let _ = connection.close().await;
    role
}

/// Whether the session on `connection` may write.
pub(crate) async fn role_of(connection: &mut PgConnection) -> Result<HostRole, sqlx::Error> {
    let (in_recovery, read_only): (bool, String) =
        sqlx::query_as("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
            .fetch_one(&mut *connection)
            .await?;
    Ok(if in_recovery || read_only == "on" {
        HostRole::ReadOnly
    } else {
        HostRole::Primary
    })
}

/// Removes `target_session_attrs` from the path-and-query `tail`, checking
/// its value: the driver does not know it, and Cairn applies it itself.
fn take_target_session_attrs(tail: &str) -> Result<(String, Option<String>), PostgresError> {
    let Some((path, query)) = tail.split_once('?') else {
        return Ok((tail.to_owned(), None));
    };
    let mut target = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((TARGET_SESSION_ATTRS, value)) => {
                if !WRITABLE_TARGETS.contains(&value) {
                    return Err(invalid(format!(
                        "{TARGET_SESSION_ATTRS}={value}: Cairn writes, so it takes \
                         read-write or primary (or leave the parameter out)"
                    )));
                }
                if target.replace(value.to_owned()).is_some() {
                    return Err(invalid(format!("{TARGET_SESSION_ATTRS} is given twice")));
                }
            }
            _ => kept.push(pair),
        }
    }
    let tail = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    Ok((tail, target))
}

/// Refuses what the driver would misread in one `host[:port]` entry.
fn check_host_entry(entry: &str) -> Result<(), PostgresError> {
    let port = if let Some(bracketed) = entry.strip_prefix('[') {
        let Some((_, after)) = bracketed.split_once(']') else {
            return Err(invalid(format!(
                "host {entry:?}: unclosed [ of an IPv6 address"
            )));
        };
        after.strip_prefix(':')
    } else {
        entry.split_once(':').map(|(_, port)| port)
    };
    match port {
        Some(port) if port.parse::<u16>().map_or(true, |port| port == 0) => Err(invalid(format!(
            "host {entry:?}: the port must be a number from 1 to 65535"
        ))),
        _ => Ok(()),
    }
}

fn invalid(message: impl Into<String>) -> PostgresError {
    PostgresError::Url {
        message: message.into(),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(url: &str) -> Vec<String> {
        let list = HostList::parse(url).expect("parses");
        list.hosts.into_iter().map(|host| host.name).collect()
    }

    fn refused(url: &str) -> String {
        HostList::parse(url).expect_err("refused").to_string()
    }

    #[test]
    fn one_host_without_target_is_used_as_before() {
        let list = HostList::parse("postgres://cairn@127.0.0.1:5432/test").unwrap();
        assert_eq!(list.hosts.len(), 1);
        assert!(!list.primary_required);
        assert_eq!(list.hosts[0].options.get_database(), Some("test"));
        assert_eq!(list.hosts[0].options.get_username(), "cairn");
    }

    #[test]
    fn a_host_list_keeps_its_order_ports_and_shared_settings() {
        let url = "postgresql://u:secret@db1:5432,db2:5433,[::1]:5434,db4/orders\
                   ?target_session_attrs=read-write&application_name=x";
        let names = names(url);
        assert_eq!(names.len(), 4);
        assert_eq!(names[..2], ["db1:5432", "db2:5433"].map(String::from));
        assert!(names[2].ends_with(":5434"), "{names:?}");
        assert_eq!(names[3], "db4:5432");
        let list = HostList::parse(url).unwrap();
        assert!(list.primary_required);
        for host in &list.hosts {
            assert_eq!(host.options.get_database(), Some("orders"));
            assert_eq!(host.options.get_username(), "u");
        }
    }

    #[test]
    fn several_hosts_require_a_primary_even_without_the_parameter() {
        let list = HostList::parse("postgres://u@a:1,b:2/db").unwrap();
        assert!(list.primary_required);
        let list = HostList::parse("postgres://u@a:1/db?target_session_attrs=primary").unwrap();
        assert!(list.primary_required);
    }

    #[test]
    fn malformed_host_lists_are_refused_with_the_reason() {
        for (url, expected) in [
            (
                "postgres://u@a:1,,b:2/db",
                "host 2 of the host list is empty",
            ),
            ("postgres://u@a:1,/db", "host 2 of the host list is empty"),
            ("postgres://u@a:x,b:2/db", "the port must be a number"),
            ("postgres://u@a:1,b:99999/db", "the port must be a number"),
            ("postgres://u@a:0/db", "the port must be a number"),
            ("postgres://u@[::1:5432/db", "unclosed ["),
            ("mysql://u@a/db", "expected postgres://"),
            (
                "postgres://u@a,b/db?target_session_attrs=any",
                "takes read-write or primary",
            ),
            (
                "postgres://u@a/db?target_session_attrs=standby",
                "takes read-write or primary",
            ),
            (
                "postgres://u@a/db?target_session_attrs=primary&target_session_attrs=primary",
                "given twice",
            ),
        ] {
            let message = refused(url);
            assert!(
                message.starts_with("invalid PostgreSQL URL"),
                "{url}: {message}"
            );
            assert!(message.contains(expected), "{url}: {message}");
        }
    }

    #[test]
    fn too_many_hosts_are_refused() {
        let hosts: Vec<String> = (1..=HOSTS_MAX + 1).map(|n| format!("h{n}:5432")).collect();
        let url = format!("postgres://u@{}/db", hosts.join(","));
        assert!(refused(&url).contains("at most 16"));
    }
}
