//! The deployment under test, as the checker sees it: server nodes (each a
//! process the checker may own, with a fault-injecting proxy in front for
//! the clients), an optional private PostgreSQL (or a replicated one:
//! a primary and its standby), and the files through
//! which it moves the servers' clocks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::api::{AccessTokens, Answer, Api};
use crate::error::CheckError;
use crate::identities::{self, IdentityStore};
use crate::options::{CheckOptions, Target, Topology};
use crate::postgres::PrivatePostgres;
use crate::proxy::FaultProxy;
use crate::replicated_postgres::ReplicatedPostgres;
use crate::server::{free_port, ServerProcess, StartFailure};

/// One server of the deployment.
pub struct Node {
    /// Its position, used in reports.
    pub idx: usize,
    /// The server itself (not through the proxy): used by the final checks
    /// and the corruption probes.
    pub direct_base: String,
    /// Where the workload talks to it: the proxy's address.
    pub client_base: String,
    /// The fault-injecting proxy in front of it.
    pub proxy: FaultProxy,
    /// The process, when the checker owns it.
    pub process: Option<ServerProcess>,
    /// Its embedded data directory, when it has one.
    pub data_dir: Option<PathBuf>,
    /// The file holding its clock offset, when its clock can be moved.
    pub clock_file: Option<PathBuf>,
}

/// Every part of the deployment.
pub struct Deployment {
    /// The servers, in order of their index.
    pub nodes: Vec<Node>,
    /// The private PostgreSQL cluster, when the checker runs one.
    pub postgres: Option<PrivatePostgres>,
    /// The replicated PostgreSQL (a primary and its standby), when the
    /// checker runs one.
    pub replicated: Option<ReplicatedPostgres>,
    /// A short description for the report.
    pub description: String,
    /// The tokens of the checker's identities, when the servers run with
    /// `--auth`.
    pub tokens: Option<AccessTokens>,
}

impl Deployment {
    /// Creates (and for owned servers, starts) the deployment of
    /// `options`; with `--auth`, first creates the identities of run
    /// `run_id` in the store the servers will use.
    pub async fn start(
        options: &CheckOptions,
        api: &Api,
        run_id: &str,
    ) -> Result<Deployment, CheckError> {
        let work_dir = &options.work_dir;
        std::fs::create_dir_all(work_dir)
            .map_err(CheckError::io(format!("create {}", work_dir.display())))?;
        let mut replicated = None;
        let (postgres, store_url, n_servers, description) = match &options.target {
            Target::Embedded if options.topology == Topology::Ring3 => (
                None,
                None,
                3,
                "ring3: 3 embedded deployments linked in a ring (B follows A, C follows B, A follows C)"
                    .to_string(),
            ),
            Target::Embedded => (None, None, 1, "embedded store, 1 server".to_string()),
            Target::Postgres { servers, store_url } => {
                let (postgres, url) = match store_url {
                    Some(url) => (None, url.clone()),
                    None => {
                        let postgres = PrivatePostgres::create(&work_dir.join("postgres"), None)
                            .map_err(CheckError::PrivatePostgres)?;
                        let url = postgres.url();
                        (Some(postgres), url)
                    }
                };
                let description = format!(
                    "PostgreSQL store ({}), {servers} servers",
                    if postgres.is_some() {
                        "private cluster"
                    } else {
                        "given database"
                    }
                );
                (postgres, Some(url), *servers, description)
            }
            Target::PostgresReplicated {
                servers,
                commits_wait_for_standby,
            } => {
                let pair = ReplicatedPostgres::create(*commits_wait_for_standby)
                    .await
                    .map_err(CheckError::PrivatePostgres)?;
                let url = pair.url();
                let description = format!(
                    "replicated PostgreSQL store ({}), {servers} servers",
                    pair.description()
                );
                replicated = Some(pair);
                (None, Some(url), *servers, description)
            }
            Target::Urls(_) if options.auth => {
                return Err(CheckError::Setup(
                    "--auth starts the servers with --auth and creates the checker's identities \
                     in their store, so it needs servers the checker starts (not --url)"
                        .to_string(),
                ))
            }
            Target::Urls(urls) => {
                let mut nodes = Vec::new();
                for (idx, url) in urls.iter().enumerate() {
                    let target = target_address(url)?;
                    let proxy = FaultProxy::start(target)
                        .await
                        .map_err(CheckError::io(format!("start a proxy for {url}")))?;
                    nodes.push(Node {
                        idx,
                        direct_base: url.trim_end_matches('/').to_string(),
                        client_base: format!("http://{}", proxy.address()),
                        proxy,
                        process: None,
                        data_dir: None,
                        clock_file: None,
                    });
                }
                let description = format!("{} given server(s): {}", urls.len(), urls.join(", "));
                return Ok(Deployment {
                    nodes,
                    postgres: None,
                    replicated: None,
                    description,
                    tokens: None,
                });
            }
        };
        let description = if options.auth {
            format!("{description}, with --auth")
        } else {
            description
        };
        let mut tokens = None;
        let mut nodes = Vec::new();
        for idx in 0..n_servers {
            let listen = free_port().map_err(CheckError::io("find a free port"))?;
            let node_dir = work_dir.join(format!("server-{idx}"));
            std::fs::create_dir_all(&node_dir)
                .map_err(CheckError::io(format!("create {}", node_dir.display())))?;
            let data_dir = node_dir.join("data");
            let mut serve_args = vec!["serve".to_string()];
            let mut clock_file = None;
            match &store_url {
                Some(url) => serve_args.extend(["--store".to_string(), url.clone()]),
                None => {
                    let file = node_dir.join("clock-offset-ms");
                    std::fs::write(&file, "0")
                        .map_err(CheckError::io(format!("write {}", file.display())))?;
                    serve_args.extend([
                        "--data".to_string(),
                        path_string(&data_dir),
                        "--fault-clock-file".to_string(),
                        path_string(&file),
                    ]);
                    clock_file = Some(file);
                }
            }
            serve_args.extend(options.server_args.iter().cloned());
            if options.auth {
                serve_args.push("--auth".to_string());
                if tokens.is_none() {
                    // Once: the embedded deployment has one server, and
                    // the PostgreSQL servers share one store.
                    let store = match &store_url {
                        Some(url) => IdentityStore::Postgres(url.clone()),
                        None => IdentityStore::Data(data_dir.clone()),
                    };
                    tokens = Some(identities::create(&options.binary, &store, run_id).await?);
                }
            }
            let process = ServerProcess::new(
                &options.binary,
                serve_args,
                listen,
                node_dir.join("server.log"),
            );
            process
                .start(api)
                .await
                .map_err(|failure| CheckError::ServerDidNotStart {
                    server_idx: idx,
                    log_tail: failure.log_tail,
                })?;
            if options.auth {
                refuses_anonymous(api, &process.base()).await?;
            }
            let proxy = FaultProxy::start(listen)
                .await
                .map_err(CheckError::io(format!("start a proxy for server {idx}")))?;
            nodes.push(Node {
                idx,
                direct_base: process.base(),
                client_base: format!("http://{}", proxy.address()),
                proxy,
                process: Some(process),
                data_dir: store_url.is_none().then_some(data_dir),
                clock_file,
            });
        }
        Ok(Deployment {
            nodes,
            postgres,
            replicated,
            description,
            tokens,
        })
    }

    /// True when the checker owns the server processes.
    pub fn owns_processes(&self) -> bool {
        self.nodes.iter().all(|node| node.process.is_some())
    }

    /// Starts every owned server that is down; the failures, by node.
    pub async fn start_all(&self, api: &Api) -> Vec<(usize, StartFailure)> {
        let mut failures = Vec::new();
        for node in &self.nodes {
            if let Some(process) = &node.process {
                if !process.is_running() {
                    if let Err(failure) = process.start(api).await {
                        failures.push((node.idx, failure));
                    }
                }
            }
        }
        failures
    }
}

impl Node {
    /// Moves this server's delivery clock to system time + `offset_ms`.
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        if let Some(file) = &self.clock_file {
            // Written whole to a temporary name and renamed, so the server
            // never reads half a number.
            let temporary = file.with_extension("tmp");
            if std::fs::write(&temporary, offset_ms.to_string()).is_ok() {
                let _ = std::fs::rename(&temporary, file);
            }
        }
    }
}

/// Fails unless the server at `base` answers a request without a token
/// `401`: a server that ignored `--auth` would make the run prove nothing
/// about access control.
async fn refuses_anonymous(api: &Api, base: &str) -> Result<(), CheckError> {
    match api.log_page_anonymous(base).await {
        Answer::Refused(401, _) => Ok(()),
        other => Err(CheckError::Setup(format!(
            "{base} was started with --auth but answered a request without a token with \
             {other:?} instead of 401"
        ))),
    }
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The socket address of a loopback server URL such as
/// `http://127.0.0.1:7710`.
fn target_address(url: &str) -> Result<SocketAddr, CheckError> {
    let invalid = |problem| CheckError::ServerUrl {
        url: url.to_string(),
        problem,
    };
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// server URLs are supported"))?
        .trim_end_matches('/');
    let authority = authority.split('/').next().unwrap_or(authority);
    let address: SocketAddr = authority
        .parse()
        .map_err(|_| invalid("give the server as http://IP:PORT (the proxy needs an address)"))?;
    Ok(address)
}
