//! A private PostgreSQL cluster for a check run: created with `initdb` in
//! the work directory, started on a free loopback port with durable
//! settings, restarted (crash or fast) as a fault, and stopped at the end.
//! Owning the cluster lets the checker restart PostgreSQL without touching
//! anyone else's database.
//!
//! PostgreSQL refuses to run as root; when the checker runs as root, every
//! PostgreSQL command runs as the `postgres` user through `runuser`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A PostgreSQL cluster the checker created and runs.
pub struct PrivatePostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    run_as_postgres: bool,
}

/// How PostgreSQL is restarted.
#[derive(Clone, Copy, Debug)]
pub enum RestartMode {
    /// `pg_ctl stop -m immediate`: a crash, recovered from the WAL at start.
    Crash,
    /// `pg_ctl stop -m fast`: connections are cut, then a clean shutdown.
    Fast,
}

impl PrivatePostgres {
    /// Creates a cluster under `dir` and starts it.
    pub fn create(dir: &Path, bin_dir: Option<PathBuf>) -> Result<PrivatePostgres, String> {
        let bin_dir = match bin_dir {
            Some(bin_dir) => bin_dir,
            None => find_bin_dir()?,
        };
        // SAFETY: geteuid has no preconditions.
        let run_as_postgres = unsafe { libc::geteuid() } == 0;
        std::fs::create_dir_all(dir).map_err(|error| error.to_string())?;
        if run_as_postgres {
            give_to_postgres(dir)?;
        }
        let port = crate::server::free_port()
            .map_err(|error| error.to_string())?
            .port();
        let cluster = PrivatePostgres {
            bin_dir,
            data_dir: dir.join("cluster"),
            log_path: dir.join("postgres.log"),
            port,
            run_as_postgres,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                path_text(&cluster.data_dir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-instructions",
            ],
        )?;
        cluster.start()?;
        Ok(cluster)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the cluster and waits until it accepts connections.
    pub fn start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c fsync=on -c synchronous_commit=on -c max_connections=200",
            self.port
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_text(&self.data_dir),
                "-l",
                path_text(&self.log_path),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    /// Stops the cluster (`fast`: clean; `immediate`: a crash).
    pub fn stop(&self, mode: RestartMode) -> Result<(), String> {
        let mode = match mode {
            RestartMode::Crash => "immediate",
            RestartMode::Fast => "fast",
        };
        self.run(
            "pg_ctl",
            &["-D", path_text(&self.data_dir), "-m", mode, "-w", "stop"],
        )
    }

    /// Runs one of PostgreSQL's programs, as `postgres` when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let program_path = self.bin_dir.join(program);
        let mut command = if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program_path);
            command
        } else {
            Command::new(&program_path)
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("cannot run {}: {error}", program_path.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.stop(RestartMode::Fast);
    }
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("work directory paths are UTF-8")
}

/// PostgreSQL's program directory: `pg_config --bindir`, or the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout).
fn find_bin_dir() -> Result<PathBuf, String> {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL's programs (initdb, pg_ctl) were not found; pass --pg-bin-dir")?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|dir| dir.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates
        .pop()
        .ok_or_else(|| "PostgreSQL's initdb was not found; pass --pg-bin-dir".to_string())
}

/// Makes `dir` (and the path to it) usable by the `postgres` user.
fn give_to_postgres(dir: &Path) -> Result<(), String> {
    let output = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .map_err(|error| format!("cannot look up the postgres user: {error}"))?;
    let uid: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| "running as root needs a `postgres` user to run PostgreSQL".to_string())?;
    std::os::unix::fs::chown(dir, Some(uid), None).map_err(|error| error.to_string())?;
    // The directories above must let the postgres user pass through.
    for ancestor in dir.ancestors().skip(1) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(metadata) = std::fs::metadata(ancestor) else {
            continue;
        };
        let mode = metadata.permissions().mode();
        if mode & 0o001 == 0 {
            let mut permissions = metadata.permissions();
            permissions.set_mode(mode | 0o001);
            std::fs::set_permissions(ancestor, permissions).map_err(|error| error.to_string())?;
        }
    }
    Ok(())
}
