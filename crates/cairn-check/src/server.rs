//! One `cairn serve` process the checker owns: started, killed, paused and
//! restarted by PID, on a fixed loopback port so that its proxy and its
//! clients find it again after every restart.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::{Answer, Api};

/// How long a server may take to answer its health check after a start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take before the server is killed.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the server log quoted in errors.
const LOG_TAIL_LINES: usize = 4;

/// A server process the checker starts and stops.
pub struct ServerProcess {
    /// `serve` and its arguments, without `--listen`.
    serve_args: Vec<String>,
    binary: PathBuf,
    listen: SocketAddr,
    log_path: PathBuf,
    child: Mutex<Option<Child>>,
}

/// Why a server did not come up.
#[derive(Debug)]
pub struct StartFailure {
    /// The server exited (true) or never answered its health check.
    pub exited: bool,
    /// The end of its log.
    pub log_tail: String,
}

impl ServerProcess {
    /// A server that will listen on `listen` and log to `log_path`.
    pub fn new(
        binary: &Path,
        serve_args: Vec<String>,
        listen: SocketAddr,
        log_path: PathBuf,
    ) -> ServerProcess {
        ServerProcess {
            serve_args,
            binary: binary.to_path_buf(),
            listen,
            log_path,
            child: Mutex::new(None),
        }
    }

    /// The server's own base URL (not through a proxy).
    pub fn base(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Starts the server and waits until its health check answers 200.
    pub async fn start(&self, api: &Api) -> Result<(), StartFailure> {
        self.spawn().map_err(|error| StartFailure {
            exited: true,
            log_tail: error,
        })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Answer::Done(_) = api.health(&self.base()).await {
                return Ok(());
            }
            if !self.is_running() {
                return Err(StartFailure {
                    exited: true,
                    log_tail: self.log_tail(),
                });
            }
            if Instant::now() > deadline {
                return Err(StartFailure {
                    exited: false,
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Spawns the process without waiting for it to serve.
    pub fn spawn(&self) -> Result<(), String> {
        let mut child_slot = self.child.lock().expect("child lock");
        if let Some(child) = child_slot.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                return Ok(());
            }
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|error| format!("cannot open {}: {error}", self.log_path.display()))?;
        let child = Command::new(&self.binary)
            .args(&self.serve_args)
            .args(["--listen", &self.listen.to_string()])
            .env_remove("CAIRN_STORE")
            .env_remove("CAIRN_DATA")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", self.binary.display()))?;
        *child_slot = Some(child);
        Ok(())
    }

    /// True while the process runs.
    pub fn is_running(&self) -> bool {
        let mut child_slot = self.child.lock().expect("child lock");
        match child_slot.as_mut() {
            Some(child) => child.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// `kill -9` and reap the process (no-op when it is not running).
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().expect("child lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGSTOP (true) or SIGCONT (false) to the running process.
    pub fn pause(&self, stop: bool) {
        if let Some(child) = self.child.lock().expect("child lock").as_ref() {
            let signal = if stop { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill(2) on the PID of a child we spawned and have not
            // reaped, so the PID cannot belong to another process.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        }
    }

    /// SIGTERM, then waits for a graceful exit (killing it after a
    /// timeout). Returns false when it had to be killed. The child stays in
    /// its slot while it stops, so that dropping this future (or the whole
    /// checker) still kills it.
    pub async fn terminate(&self) -> bool {
        {
            let child_slot = self.child.lock().expect("child lock");
            let Some(child) = child_slot.as_ref() else {
                return true;
            };
            // SAFETY: as in `pause`: our own unreaped child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGCONT);
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + TERMINATE_TIMEOUT;
        loop {
            if !self.is_running() {
                self.kill();
                return true;
            }
            if Instant::now() > deadline {
                self.kill();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port, chosen by binding port 0 (the server binds it
/// again right after; the kernel does not hand it out meanwhile in
/// practice).
pub fn free_port() -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}
