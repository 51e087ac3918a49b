//! The PostgreSQL store over TLS, for real: a private PostgreSQL cluster
//! (`PrivateCluster`) with `ssl = on`, a certificate of a CA made here and
//! a `pg_hba.conf` that accepts TLS connections only; the real
//! `cairn serve --store 'postgres://…?sslmode=verify-full&sslrootcert=CA'`
//! writes and reads a fact through it, and refuses to start against a CA
//! that did not sign the server's certificate, saying why.
//!
//! It needs PostgreSQL's programs (`initdb`, `pg_ctl`), not a running
//! server; it skips, saying so, only where they are not installed.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_store::postgres::private_cluster::PrivateCluster;
use common::tls::TestCa;
use common::*;

/// How long `cairn serve` may take to give up on a refused connection.
const EXIT_WAIT: Duration = Duration::from_secs(60);

/// A started cluster that takes TLS connections only, with a certificate
/// of the CA `ca` for 127.0.0.1.
fn tls_cluster(bin_dir: &Path, dir: &Path, ca: &TestCa) -> PrivateCluster {
    let certificate = ca.server_certificate(dir, "postgres", 1);
    let mut cluster = PrivateCluster::init(bin_dir).unwrap();
    cluster
        .install_file(
            "server.crt",
            &std::fs::read(&certificate.certificate).unwrap(),
        )
        .unwrap();
    cluster
        .install_file("server.key", &std::fs::read(&certificate.key).unwrap())
        .unwrap();
    cluster
        .configure(&[
            ("ssl", "on"),
            ("ssl_cert_file", "'server.crt'"),
            ("ssl_key_file", "'server.key'"),
        ])
        .unwrap();
    // TLS or nothing: a connection without it finds no entry.
    cluster
        .set_hba("hostssl all all 127.0.0.1/32 trust\n")
        .unwrap();
    cluster.start().unwrap();
    cluster
}

/// Runs `cairn serve --store URL` expecting it to fail at start; its
/// standard error.
fn serve_fails(data: &Path, store_url: &str) -> String {
    let mut child = Command::new(CAIRN)
        .arg("serve")
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--store", store_url])
        .args(["--pg-acquire-timeout-ms", "5000"])
        .env_remove("CAIRN_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > EXIT_WAIT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("cairn serve --store {store_url} did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{store_url} was accepted: {stderr}");
    stderr
}

#[test]
fn the_store_connects_over_tls_and_verifies_the_server() {
    let Some(bin_dir) = PrivateCluster::find_bin_dir() else {
        eprintln!("skipped: PostgreSQL's programs (initdb, pg_ctl) are not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "postgres");
    let wrong_ca = TestCa::new(dir.path(), "wrong");
    let cluster = tls_cluster(&bin_dir, dir.path(), &ca);
    let base_url = cluster.url();
    let ca_path = ca.certificate.to_str().unwrap();

    // verify-full: the chain and the name (127.0.0.1) are checked.
    let verified = format!("{base_url}?sslmode=verify-full&sslrootcert={ca_path}");
    let server = Server::start_with_store(&dir.path().join("data"), &verified, &[]);
    let fact_json = r#"{"type":"Tls.Stored","predecessors":{},"fields":{"n":1}}"#;
    let put = run_cli(&["put", "--server", &server.base], fact_json);
    assert!(put.success, "{}", put.stderr);
    let hash = cairn_fact::CanonicalFact::from_json(
        fact_json.as_bytes(),
        cairn_fact::FACT_CANONICAL_BYTES_MAX_DEFAULT,
    )
    .unwrap()
    .hash
    .to_string();
    let get = run_cli(&["get", "--server", &server.base, &hash], "");
    assert!(get.success, "{}", get.stderr);
    assert!(get.stdout.contains("Tls.Stored"), "{}", get.stdout);
    drop(server);

    // require: encrypted, the certificate not checked (as libpq does).
    let required = format!("{base_url}?sslmode=require");
    let server = Server::start_with_store(&dir.path().join("data"), &required, &[]);
    let get = run_cli(&["get", "--server", &server.base, &hash], "");
    assert!(get.success, "{}", get.stderr);
    drop(server);

    // A CA that did not sign the server's certificate is refused, clearly.
    let wrong = format!(
        "{base_url}?sslmode=verify-full&sslrootcert={}",
        wrong_ca.certificate.display()
    );
    let stderr = serve_fails(&dir.path().join("data"), &wrong);
    assert!(
        stderr.contains("cannot start on the PostgreSQL store") && stderr.contains("certificate"),
        "{stderr}"
    );

    // Without TLS the cluster lets no one in: the connections above were
    // encrypted.
    let plain = format!("{base_url}?sslmode=disable");
    let stderr = serve_fails(&dir.path().join("data"), &plain);
    assert!(stderr.contains("no encryption"), "{stderr}");
}
