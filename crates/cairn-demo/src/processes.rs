//! The demo's child processes: Cairn (`cairn serve --auth`) and one
//! process per service (`cairn demo-service NAME`), all of the binary that
//! runs the demo. Each is known by its PID and stopped by it; nothing is
//! ever killed by name.
//!
//! A service gets a pipe as its standard input and stops when it closes,
//! so closing the pipe is its graceful stop, and a service whose demo died
//! without cleaning up stops by itself. Faults are `SIGKILL`
//! ([`std::process::Child::kill`]). On every way out — the end of the run,
//! an error, SIGINT or SIGTERM, a panic — [`Children`] is dropped and
//! kills and reaps what is still running.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::DemoError;
use crate::limits::SERVICE_STOP_TIMEOUT;

/// A running service process and the pipe that keeps it running.
struct ServiceProcess {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// How a service process is started.
#[derive(Clone, Debug)]
pub struct ServiceLaunch {
    /// Extra arguments after `demo-service NAME`.
    pub arguments: Vec<String>,
    /// Its access token (`CAIRN_TOKEN`).
    pub access_token: String,
}

/// The demo's children.
pub struct Children {
    executable: PathBuf,
    logs_dir: PathBuf,
    cairn_data_dir: PathBuf,
    listen: String,
    cairn: Option<Child>,
    services: BTreeMap<&'static str, ServiceProcess>,
    launches: BTreeMap<&'static str, ServiceLaunch>,
}

impl Children {
    /// No children yet; Cairn will keep its data in `cairn_data_dir` and
    /// listen on `listen`; logs go to `logs_dir`.
    pub fn new(
        executable: PathBuf,
        logs_dir: PathBuf,
        cairn_data_dir: PathBuf,
        listen: String,
    ) -> Children {
        Children {
            executable,
            logs_dir,
            cairn_data_dir,
            listen,
            cairn: None,
            services: BTreeMap::new(),
            launches: BTreeMap::new(),
        }
    }

    fn log_file(&self, name: &str) -> Result<File, DemoError> {
        let path = self.logs_dir.join(format!("{name}.log"));
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| DemoError::DataDirectory { path, source })
    }

    /// The path of a child's log.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.logs_dir.join(format!("{name}.log"))
    }

    /// Runs `cairn tokens create --data … --name admin --admin` before
    /// Cairn starts, and returns the token (the last line it prints).
    pub fn create_admin_token(&self) -> Result<String, DemoError> {
        let output = Command::new(&self.executable)
            .args(["tokens", "create", "--name", "admin", "--admin", "--data"])
            .arg(&self.cairn_data_dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| DemoError::Spawn {
                what: "cairn tokens create".to_owned(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        match stdout.lines().last() {
            Some(token) if output.status.success() && token.starts_with("cairn_") => {
                Ok(token.trim().to_owned())
            }
            _ => Err(DemoError::Cairn(format!(
                "cannot create the admin token: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))),
        }
    }

    /// Starts Cairn; its output goes to `cairn.log`.
    pub fn start_cairn(&mut self) -> Result<u32, DemoError> {
        let log = self.log_file("cairn")?;
        let log_too = log.try_clone().map_err(|source| DemoError::DataDirectory {
            path: self.log_path("cairn"),
            source,
        })?;
        let child = Command::new(&self.executable)
            .args(["serve", "--auth", "--listen", &self.listen, "--data"])
            .arg(&self.cairn_data_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too)
            .spawn()
            .map_err(|source| DemoError::Spawn {
                what: "cairn serve".to_owned(),
                source,
            })?;
        let pid = child.id();
        self.cairn = Some(child);
        Ok(pid)
    }

    /// Whether Cairn's process has ended (and how), if it was started.
    pub fn cairn_exited(&mut self) -> Option<String> {
        let child = self.cairn.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(error) => Some(error.to_string()),
        }
    }

    /// `kill -9` of Cairn; returns its PID.
    pub fn kill_cairn(&mut self) -> Option<u32> {
        let mut child = self.cairn.take()?;
        let pid = child.id();
        let _ = child.kill();
        let _ = child.wait();
        Some(pid)
    }

    /// Starts the service `name` with `launch` (remembered for restarts).
    pub fn start_service(
        &mut self,
        name: &'static str,
        launch: ServiceLaunch,
    ) -> Result<u32, DemoError> {
        self.launches.insert(name, launch);
        self.restart_service(name)
    }

    /// Starts the service `name` again, as it was first started.
    pub fn restart_service(&mut self, name: &'static str) -> Result<u32, DemoError> {
        let Some(launch) = self.launches.get(name).cloned() else {
            return Err(DemoError::InvalidArgument(format!(
                "{name} was never started"
            )));
        };
        let log = self.log_file(name)?;
        let mut child = Command::new(&self.executable)
            .args(["demo-service", name])
            .args(&launch.arguments)
            .env("CAIRN_TOKEN", &launch.access_token)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| DemoError::Spawn {
                what: format!("the {name} service"),
                source,
            })?;
        let pid = child.id();
        let stdin = child.stdin.take();
        self.services.insert(name, ServiceProcess { child, stdin });
        Ok(pid)
    }

    /// SIGKILL of the service `name`; returns its PID.
    pub fn kill_service(&mut self, name: &str) -> Option<u32> {
        let mut process = self.services.remove(name)?;
        let pid = process.child.id();
        let _ = process.child.kill();
        let _ = process.child.wait();
        Some(pid)
    }

    /// The services whose process ended by itself, with how.
    pub fn exited_services(&mut self) -> Vec<(&'static str, String)> {
        let mut exited = Vec::new();
        for (name, process) in &mut self.services {
            match process.child.try_wait() {
                Ok(Some(status)) => exited.push((*name, status.to_string())),
                Ok(None) => {}
                Err(error) => exited.push((*name, error.to_string())),
            }
        }
        for (name, _) in &exited {
            self.services.remove(name);
        }
        exited
    }

    /// Stops every service gracefully (closes its pipe, waits a bounded
    /// time, then kills it), then Cairn (SIGTERM through `kill`, then
    /// SIGKILL if it lingers).
    pub async fn stop_all(&mut self) {
        for process in self.services.values_mut() {
            process.stdin = None;
        }
        let deadline = Instant::now() + SERVICE_STOP_TIMEOUT;
        for process in self.services.values_mut() {
            wait_until(&mut process.child, deadline).await;
        }
        self.services.clear();
        if let Some(mut child) = self.cairn.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            wait_until(&mut child, Instant::now() + SERVICE_STOP_TIMEOUT).await;
        }
    }

    /// SIGKILL of every child still running, each reaped.
    pub fn kill_all(&mut self) {
        for (_, mut process) in std::mem::take(&mut self.services) {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        if let Some(mut child) = self.cairn.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The PIDs of every running child.
    pub fn pids(&self) -> Vec<u32> {
        let services = self.services.values().map(|process| process.child.id());
        self.cairn.iter().map(Child::id).chain(services).collect()
    }

    /// Where the logs are.
    pub fn logs_dir(&self) -> &Path {
        &self.logs_dir
    }
}

/// Waits for `child` to end until `deadline`, then kills it; reaps it
/// either way.
async fn wait_until(child: &mut Child, deadline: Instant) {
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill_all();
    }
}
