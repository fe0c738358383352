//! TLS 1.3 on the hops the product owns (issue 31, item 8): `serve` with `TLS_CERT_FILE` and
//! `TLS_KEY_FILE` answers HTTPS with TLS 1.3 only — checked with `openssl s_client`, a client
//! nobody here wrote: TLS 1.3 verifies against the right CA, a TLS 1.2-only client is refused,
//! the wrong CA fails verification, plain HTTP gets nothing — and NATS with
//! `NATS_TLS_CA_FILE` is reached over TLS to a `nats-server --tls` (events reach its stream),
//! while a wrong CA never connects. A test CA and the server's certificate are made by
//! `openssl` for the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser;

use crate::common::*;
use crate::relay::nats_server_bin;

fn openssl(dir: &Path, args: &[&str]) {
    let ran = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(ran.success(), "openssl {args:?}");
}

/// A test CA named `name` and a server certificate it signed for 127.0.0.1 / localhost:
/// (the CA's certificate, the server's certificate, the server's key).
fn ca_and_server(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let (ca, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca-key.pem"));
    let (cert, key, csr, ext) =
        (format!("{name}.pem"), format!("{name}-key.pem"), format!("{name}.csr"), format!("{name}.ext"));
    openssl(
        dir,
        &[
            &["req", "-x509", "-days", "1", "-subj", "/CN=TokenHub test CA"][..],
            &ec,
            &["-keyout", &ca_key, "-out", &ca],
        ]
        .concat(),
    );
    openssl(dir, &[&["req", "-subj", "/CN=localhost"][..], &ec, &["-keyout", &key, "-out", &csr]].concat());
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &cert,
            "-extfile",
            &ext,
        ],
    );
    (dir.join(ca), dir.join(cert), dir.join(key))
}

/// A child process killed when dropped, also when an assertion fails first.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh directory for one test's certificates and files.
fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `openssl s_client` against `port` with `version` (`-tls1_2` / `-tls1_3`) trusting `ca`:
/// whether the handshake and the verification succeeded, and what it printed.
fn s_client(port: u16, version: &str, ca: &Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            version,
            "-brief",
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test]
async fn serve_speaks_tls_1_3_only_and_nats_is_reached_over_tls() {
    tokenhub::app::install_crypto_provider();
    let dir = scratch_dir("tokenhub-tls");
    let (ca, cert, key) = ca_and_server(&dir, "server");
    let (other_ca, _, _) = ca_and_server(&dir, "other");
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--tls-cert-file", &cert_s, "--tls-key-file", &key_s],
    ))
    .await;
    let port = app.addr.port();

    // A client trusting the certificate: HTTPS works, over TLS 1.3.
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let https = reqwest::Client::builder().add_root_certificate(root).build().unwrap();
    let res = https.get(format!("https://127.0.0.1:{port}/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (ok, said) = tokio::task::spawn_blocking({
        let ca = ca.clone();
        move || s_client(port, "-tls1_3", &ca)
    })
    .await
    .unwrap();
    assert!(ok && said.contains("TLSv1.3"), "{said}");
    // TLS 1.2 only: refused.
    let (ok, said) = tokio::task::spawn_blocking({
        let ca = ca.clone();
        move || s_client(port, "-tls1_2", &ca)
    })
    .await
    .unwrap();
    assert!(!ok, "a TLS 1.2-only client must be refused: {said}");
    // The wrong CA: verification fails (in openssl and in an HTTP client).
    let (ok, said) = tokio::task::spawn_blocking({
        let other_ca = other_ca.clone();
        move || s_client(port, "-tls1_3", &other_ca)
    })
    .await
    .unwrap();
    assert!(!ok, "the wrong CA must not verify: {said}");
    let wrong = reqwest::Certificate::from_pem(&std::fs::read(&other_ca).unwrap()).unwrap();
    let strict = reqwest::Client::builder().add_root_certificate(wrong).build().unwrap();
    assert!(strict.get(format!("https://127.0.0.1:{port}/healthz")).send().await.is_err());
    // Plain HTTP on the TLS port gets no answer.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_err());
    app.stop().await;

    // NATS over TLS: a private nats-server with the same certificate.
    let nats_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nats = Command::new(nats_server_bin())
        .args(["-a", "127.0.0.1", "-p", &nats_port.to_string(), "-js", "-sd"])
        .arg(dir.join("nats"))
        .args(["--tls", "--tlscert", &cert_s, "--tlskey", &key_s])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .expect("nats-server starts");
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let started = eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", nats_port)).await.is_ok()
    })
    .await;
    assert!(started, "nats-server --tls listening");
    let over_tls = |ca: &Path| {
        let mut args: Vec<String> = [
            "tokenhub",
            "--database-url",
            &db.url,
            "--nats-url",
            &nats_url,
            "--key-pepper",
            "test-pepper-test-pepper-test-pepper-0000",
            "--kek",
            TEST_KEK,
            "--master-api-key",
            MASTER,
            "--database-max-connections",
            "8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["--nats-tls-ca-file".to_string(), ca.display().to_string(), "serve".to_string()]);
        tokenhub::cli::Cli::try_parse_from(args).unwrap().config
    };
    let db2 = TestDb::new();
    let mut right = over_tls(&ca);
    right.database_url = db2.url.clone();
    let app = TestApp::start_with(right).await;
    app.create_tenant("Over TLS").await;
    let tls_client =
        tokenhub::nats::options(Some(&ca)).connect(&nats_url).await.expect("a TLS client connects");
    let js = async_nats::jetstream::new(tls_client);
    let relayed = eventually(Duration::from_secs(15), || async {
        match js.get_stream("TOKENHUB_EVENTS").await {
            Ok(mut s) => s.info().await.is_ok_and(|i| i.state.messages > 0),
            Err(_) => false,
        }
    })
    .await;
    assert!(relayed, "events reached the stream over TLS");
    app.stop().await;
    // A plain client is refused by the TLS server; a client trusting another CA never connects.
    assert!(
        tokio::time::timeout(Duration::from_secs(3), async_nats::connect(&nats_url))
            .await
            .map_or(true, |r| r.is_err()),
        "a plain client must not connect"
    );
    let wrong = tokio::time::timeout(
        Duration::from_secs(3),
        tokenhub::nats::options(Some(&other_ca)).connect(&nats_url),
    )
    .await;
    assert!(wrong.map_or(true, |r| r.is_err()), "a client trusting another CA must not connect");
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
}

/// PostgreSQL connections honour `sslmode=verify-full` in `DATABASE_URL`: against a private
/// PostgreSQL cluster with `ssl=on` and a certificate from the test CA, an instance trusting
/// that CA (`sslrootcert`) starts and works; one trusting another CA refuses to start.
#[tokio::test]
async fn postgres_connections_honour_sslmode_verify_full() {
    tokenhub::app::install_crypto_provider();
    let Some(bin) = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|mut versions| versions.find_map(|v| v.ok()))
        .map(|v| v.path().join("bin"))
    else {
        panic!("PostgreSQL's server binaries (/usr/lib/postgresql/<version>/bin) are needed");
    };
    let dir = scratch_dir("tokenhub-pgtls");
    let (ca, cert, key) = ca_and_server(&dir, "pg");
    let (other_ca, _, _) = ca_and_server(&dir, "other");
    let data = dir.join("data");
    let as_postgres = |program: &Path, args: &[&str]| {
        let ran = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("runuser runs");
        assert!(ran.success(), "{} {args:?}", program.display());
    };
    // The cluster runs as `postgres`: it owns the directory and the key (0600).
    let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap();
    assert!(chown.success());
    as_postgres(&bin.join("initdb"), &["-D", &data.display().to_string(), "--auth=trust", "-U", "postgres"]);
    std::fs::copy(&cert, data.join("server.crt")).unwrap();
    std::fs::copy(&key, data.join("server.key")).unwrap();
    let _ = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(data.join("server.crt"))
        .arg(data.join("server.key"))
        .status();
    let _ = Command::new("chmod").args(["600"]).arg(data.join("server.key")).status();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -c ssl=on -c unix_socket_directories={} -c max_connections=30",
        data.display()
    );
    as_postgres(
        &bin.join("pg_ctl"),
        &[
            "-D",
            &data.display().to_string(),
            "-l",
            &data.join("log").display().to_string(),
            "-o",
            &options,
            "-w",
            "start",
        ],
    );
    // Stopped when dropped, also when an assertion fails first.
    struct Cluster(PathBuf, PathBuf);
    impl Drop for Cluster {
        fn drop(&mut self) {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&self.0)
                .arg("-D")
                .arg(&self.1)
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    let cluster = Cluster(bin.join("pg_ctl"), data.clone());
    let stream = TestStream::new();
    let unused = TestDb::new();
    let with_url = |url: String| {
        let mut config = config(&unused, &stream, &["--master-api-key", MASTER]);
        config.database_url = url;
        config
    };
    let url = |root: &Path| {
        format!(
            "postgres://postgres@127.0.0.1:{port}/tokenhub_tls?sslmode=verify-full&sslrootcert={}",
            root.display()
        )
    };
    // The right CA: the instance starts, and works.
    let app = TestApp::start_with(with_url(url(&ca))).await;
    let (tenant, _) = app.create_tenant("Over TLS to PostgreSQL").await;
    assert!(tenant.starts_with("ten_"));
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(ssl, "the pool's connections are encrypted");
    app.stop().await;
    // Another CA: refused at start, with the reason.
    let refused = tokenhub::app::App::build(&with_url(url(&other_ca))).await;
    let reason = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(!reason.is_empty(), "an instance trusting another CA must not start");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The gateway's upstream client (`gateway::upstream`) against a TLS server nobody here wrote
/// (`openssl s_server -www`): it verifies the certificate (a CA it was given: answered; the
/// platform's roots or another CA: refused), and connects to a name only through the outbound
/// rules' checked resolver (`localhost` refused unless private upstreams are allowed).
#[tokio::test]
async fn the_gateways_upstream_client_verifies_certificates_and_checks_names() {
    use axum::http::Request;
    use http_body_util::Full;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use tokenhub::gateway::upstream::{Failure, Upstreams};

    tokenhub::app::install_crypto_provider();
    let dir = scratch_dir("tokenhub-tls-up");
    let (ca, cert, key) = ca_and_server(&dir, "upstream");
    let (other_ca, _, _) = ca_and_server(&dir, "other");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Command::new("openssl")
        .args(["s_server", "-accept", &port.to_string(), "-www", "-quiet"])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .expect("openssl s_server starts");
    let listening = eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await;
    assert!(listening, "openssl s_server listening");

    let trusting = |ca: &Path, allow_private: bool| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Upstreams::with_tls(allow_private, Duration::from_secs(5), Duration::from_secs(5), tls)
    };
    let get = |host: &str| Request::get(format!("https://{host}:{port}/")).body(Full::default()).unwrap();

    // Its CA given: the TLS handshake and the answer go through, by address and by name.
    for host in ["127.0.0.1", "localhost"] {
        let mut answer = trusting(&ca, true).send(get(host)).await.unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(answer.status(), 200, "{host}");
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        assert!(String::from_utf8_lossy(&body).contains("Cipher"), "s_server's status page");
    }
    // Another CA, or the platform's roots: refused.
    assert_eq!(trusting(&other_ca, true).send(get("127.0.0.1")).await.err(), Some(Failure::Unreachable));
    let platform = Upstreams::new(true, Duration::from_secs(5), Duration::from_secs(5)).unwrap();
    assert_eq!(platform.send(get("localhost")).await.err(), Some(Failure::Unreachable));
    // A name that resolves to loopback: refused by the resolver unless private upstreams are
    // allowed, whatever the certificate.
    assert_eq!(trusting(&ca, false).send(get("localhost")).await.err(), Some(Failure::Unreachable));
    let _ = std::fs::remove_dir_all(&dir);
}
