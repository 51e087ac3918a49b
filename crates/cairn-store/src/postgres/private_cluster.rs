//! Test support (feature `private-cluster`, part of `test-support`): a
//! PostgreSQL cluster of the test's own — `initdb` in a fresh temporary
//! directory, configured by the test (TLS, `pg_hba.conf`, replication
//! settings), started on a free loopback port, stopped and deleted when
//! dropped, also when the test fails. For what the shared server of
//! `testing::TestDatabase` cannot do: server settings (`ssl = on`),
//! restarts, several clusters (a primary and its streaming standbys, a
//! failover by `kill -9` and promotion, a failed primary rebuilt as a
//! standby). The failover tests and `cairn check --backend postgres-ha`
//! both run on it.
//!
//! PostgreSQL refuses to run as root; when the tests run as root, every
//! PostgreSQL program runs as the `postgres` user through `runuser`, and
//! the directory and the files installed in it are given to that user.
//! Errors are strings: this is test support, and every one of them ends a
//! test with its message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// A private PostgreSQL cluster; see the module documentation.
pub struct PrivateCluster {
    bin_dir: PathBuf,
    /// The temporary directory holding everything (deleted on drop).
    dir: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    /// `(uid, gid)` of `postgres` when running as root.
    run_as: Option<(u32, u32)>,
    running: bool,
}

impl PrivateCluster {
    /// PostgreSQL's program directory: `pg_config --bindir`, or the newest
    /// `/usr/lib/postgresql/*/bin` (Debian's layout); `None` when
    /// PostgreSQL is not installed (the only reason a test may skip).
    pub fn find_bin_dir() -> Option<PathBuf> {
        if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
            let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            if dir.join("initdb").exists() {
                return Some(dir);
            }
        }
        let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
            .filter(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
            .collect();
        candidates.sort();
        candidates.pop()
    }

    /// Creates a cluster (`initdb`, trust authentication for the
    /// `postgres` user) in a new temporary directory, not yet started.
    pub fn init(bin_dir: &Path) -> Result<PrivateCluster, String> {
        let cluster = PrivateCluster::empty(bin_dir)?;
        cluster.run_checked(
            "initdb",
            &[
                "-D",
                path_text(&cluster.data_dir)?,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-instructions",
            ],
        )?;
        Ok(cluster)
    }

    /// Creates a streaming standby of the running `primary`
    /// (`pg_basebackup -R`) in a new temporary directory, not yet started.
    /// It connects to the primary as `application_name = name`, the name
    /// the primary's `synchronous_standby_names` can list.
    pub fn standby_of(primary: &PrivateCluster, name: &str) -> Result<PrivateCluster, String> {
        PrivateCluster::standby_through(primary, primary.port, name)
    }

    /// [`PrivateCluster::standby_of`], streaming from the primary through
    /// `port` on loopback (a proxy in front of it, so that replication can
    /// be cut) instead of its own port.
    pub fn standby_through(
        primary: &PrivateCluster,
        port: u16,
        name: &str,
    ) -> Result<PrivateCluster, String> {
        let standby = PrivateCluster::empty(&primary.bin_dir)?;
        standby.base_backup(port, name)?;
        Ok(standby)
    }

    /// Throws this cluster's data away and makes it a streaming standby of
    /// the primary reached at `port` on loopback, as `name`, keeping its own
    /// port: how a failed primary rejoins after a failover (a fresh base
    /// backup; `pg_rewind` would need `wal_log_hints`). Stops it first if it
    /// runs; not started.
    pub fn rebuild_as_standby(&mut self, port: u16, name: &str) -> Result<(), String> {
        self.stop()?;
        std::fs::remove_dir_all(&self.data_dir)
            .map_err(|error| format!("cannot remove {}: {error}", self.data_dir.display()))?;
        self.base_backup(port, name)
    }

    /// Points this running standby at the primary reached at `port` on
    /// loopback, as `name` (`primary_conninfo`, reloaded: PostgreSQL 13 and
    /// later restart the WAL receiver without a restart), as a standby
    /// does after another one was promoted. It follows the new primary's
    /// timeline if it has not received WAL beyond the fork.
    pub fn follow(&self, port: u16, name: &str) -> Result<(), String> {
        use std::io::Write;
        // `pg_basebackup -R` wrote the setting here; a later line wins.
        let path = self.data_dir.join("postgresql.auto.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        writeln!(
            file,
            "primary_conninfo = 'host=127.0.0.1 port={port} user=postgres application_name={name}'"
        )
        .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        self.sql("SELECT pg_reload_conf()").map(|_| ())
    }

    /// `pg_basebackup -R` from the server at `port` into the (absent) data
    /// directory, connecting as `application_name = name`.
    fn base_backup(&self, port: u16, name: &str) -> Result<(), String> {
        let source = format!("host=127.0.0.1 port={port} user=postgres application_name={name}");
        self.run_checked(
            "pg_basebackup",
            &[
                "-d",
                &source,
                "-D",
                path_text(&self.data_dir)?,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        )
    }

    /// Runs `query` through `psql` on the running server and returns what
    /// it printed (unaligned, tuples only: one value per line, `|` between
    /// columns), or why it failed.
    pub fn sql(&self, query: &str) -> Result<String, String> {
        let port = self.port.to_string();
        let output = self.run_program(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                query,
            ],
        )?;
        if !output.status.success() {
            return Err(format!(
                "psql -c {query:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// A new temporary directory for a cluster, with a free port; dropping
    /// the value deletes the directory.
    fn empty(bin_dir: &Path) -> Result<PrivateCluster, String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cairn-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|error| error.to_string())?;
        }
        std::fs::create_dir_all(&dir).map_err(|error| error.to_string())?;
        let run_as = if is_root()? {
            Some(postgres_ids()?)
        } else {
            None
        };
        let cluster = PrivateCluster {
            bin_dir: bin_dir.to_path_buf(),
            data_dir: dir.join("data"),
            log_path: dir.join("postgres.log"),
            dir,
            port: free_port()?,
            run_as,
            running: false,
        };
        // From here on, dropping `cluster` deletes the directory.
        cluster.give_away(&cluster.dir, 0o700)?;
        Ok(cluster)
    }

    /// Promotes a standby to primary (`pg_ctl promote`) and waits until it
    /// accepts writes.
    pub fn promote(&self) -> Result<(), String> {
        let data_dir = path_text(&self.data_dir)?.to_string();
        self.run_checked("pg_ctl", &["-D", &data_dir, "-w", "-t", "60", "promote"])
    }

    /// Kills the postmaster with SIGKILL, as a crash of its machine would
    /// end it (its backends notice and exit), and waits until the port
    /// refuses connections.
    pub fn kill_postmaster(&mut self) -> Result<(), String> {
        let pid_path = self.data_dir.join("postmaster.pid");
        let pid_file = std::fs::read_to_string(&pid_path)
            .map_err(|error| format!("cannot read {}: {error}", pid_path.display()))?;
        let pid = pid_file
            .lines()
            .next()
            .and_then(|line| line.trim().parse::<u32>().ok())
            .ok_or_else(|| format!("{} names no process", pid_path.display()))?;
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .map_err(|error| format!("cannot run kill: {error}"))?;
        if !status.success() {
            return Err(format!("kill -9 {pid} failed ({status})"));
        }
        self.running = false;
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(format!(
            "port {} still answers after kill -9 {pid}",
            self.port
        ))
    }

    /// The loopback port it listens on once started.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of its `postgres` database as the `postgres` user, without
    /// parameters.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Writes `contents` to `NAME` in the data directory, readable only by
    /// the server (as PostgreSQL wants a key file), and returns its path.
    pub fn install_file(&self, name: &str, contents: &[u8]) -> Result<PathBuf, String> {
        let path = self.data_dir.join(name);
        std::fs::write(&path, contents)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        self.give_away(&path, 0o600)?;
        Ok(path)
    }

    /// Appends settings (`name = value`, values quoted as needed) to
    /// `postgresql.conf`; they take effect at the next start.
    pub fn configure(&self, settings: &[(&str, &str)]) -> Result<(), String> {
        use std::io::Write;
        let path = self.data_dir.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        for (name, value) in settings {
            writeln!(file, "{name} = {value}")
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        }
        Ok(())
    }

    /// Replaces `pg_hba.conf` (who may connect, and how).
    pub fn set_hba(&self, lines: &str) -> Result<(), String> {
        self.install_file("pg_hba.conf", lines.as_bytes())
            .map(|_| ())
    }

    /// Starts the server on 127.0.0.1 only (no Unix socket) with durable
    /// settings, and waits until it accepts connections.
    pub fn start(&mut self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c fsync=on -c synchronous_commit=on",
            self.port
        );
        let data_dir = path_text(&self.data_dir)?.to_string();
        let log_path = path_text(&self.log_path)?.to_string();
        // Marked first: a start that times out may still leave a server.
        self.running = true;
        let started = self.run_checked(
            "pg_ctl",
            &[
                "-D", &data_dir, "-l", &log_path, "-o", &options, "-w", "-t", "60", "start",
            ],
        );
        started.map_err(|error| format!("{error}\nserver log:\n{}", self.log_text()))
    }

    /// Stops the server (`pg_ctl stop -m fast`) and waits for it.
    pub fn stop(&mut self) -> Result<(), String> {
        if !self.running {
            return Ok(());
        }
        let data_dir = path_text(&self.data_dir)?.to_string();
        self.run_checked(
            "pg_ctl",
            &["-D", &data_dir, "-m", "fast", "-w", "-t", "60", "stop"],
        )?;
        self.running = false;
        Ok(())
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when we are root)
    /// and returns its output, whatever its status: for what this type
    /// does not wrap (`pg_basebackup`, `psql`).
    pub fn run_program(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let program_path = self.bin_dir.join(program);
        let mut command = match self.run_as {
            Some(_) => {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(&program_path);
                command
            }
            None => Command::new(&program_path),
        };
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("cannot run {}: {error}", program_path.display()))
    }

    fn run_checked(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let output = self.run_program(program, args)?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "{program} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    /// Gives `path` to the `postgres` user (when we are root) with `mode`.
    fn give_away(&self, path: &Path, mode: u32) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|error| format!("cannot chown {}: {error}", path.display()))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|error| format!("cannot chmod {}: {error}", path.display()))
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.running {
            // Fast first; if that fails, a crash stop still ends it.
            if self.stop().is_err() {
                if let Ok(data_dir) = path_text(&self.data_dir) {
                    let data_dir = data_dir.to_string();
                    let _ = self.run_program(
                        "pg_ctl",
                        &["-D", &data_dir, "-m", "immediate", "-w", "stop"],
                    );
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_text(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// Whether this process runs as root (`id -u`; std has no `geteuid`, and
/// this crate has no unsafe code).
fn is_root() -> Result<bool, String> {
    Ok(id(&["-u"])? == 0)
}

/// The `postgres` user's uid and gid.
fn postgres_ids() -> Result<(u32, u32), String> {
    let uid = id(&["-u", "postgres"])
        .map_err(|error| format!("running as root needs a `postgres` user: {error}"))?;
    Ok((uid, id(&["-g", "postgres"])?))
}

fn id(args: &[&str]) -> Result<u32, String> {
    let output = Command::new("id")
        .args(args)
        .output()
        .map_err(|error| format!("cannot run id: {error}"))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("id {args:?} printed no number"))
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
    let port = listener
        .local_addr()
        .map_err(|error| error.to_string())?
        .port();
    Ok(port)
}
