//! A three-node NATS JetStream cluster on loopback: with `NATS_URL` naming the three nodes and
//! `NATS_STREAM_REPLICAS=3`, the streams are replicated, and killing a node (the one the
//! instance is connected to included) loses nothing: commands, the relay and usage reports
//! go on through the other two.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::relay::nats_server_bin;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Cluster {
    nodes: Vec<Option<Child>>,
    ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl Cluster {
    fn start() -> Self {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let dir = std::env::temp_dir().join(format!("tokenhub-cluster-{}", uuid::Uuid::new_v4().simple()));
        let all_routes = routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let nodes = (0..3)
            .map(|i| {
                let child = Command::new(nats_server_bin())
                    .args(["-a", "127.0.0.1", "-p", &ports[i].to_string(), "-js", "-n", &format!("n{i}")])
                    .args([
                        "--cluster_name",
                        "tokenhub-test",
                        "--cluster",
                        &format!("nats://127.0.0.1:{}", routes[i]),
                    ])
                    .args(["--routes", &all_routes, "-sd"])
                    .arg(dir.join(format!("n{i}")))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start nats-server: {e}"));
                Some(child)
            })
            .collect();
        Self { nodes, ports, dir }
    }

    fn urls(&self) -> String {
        self.ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn losing_a_node_of_a_three_node_cluster_loses_nothing() {
    tokenhub::app::install_crypto_provider();
    let mut cluster = Cluster::start();
    // The cluster elects its JetStream meta leader first.
    let ready = eventually(Duration::from_secs(30), || async {
        let Ok(client) = async_nats::connect(cluster_url(&cluster)).await else { return false };
        let js = async_nats::jetstream::new(client);
        // JetStream answers (here: that a stream does not exist) once the meta leader is elected.
        matches!(js.get_stream("READINESS_PROBE").await, Err(e) if e.to_string().contains("not found"))
    })
    .await;
    assert!(ready, "the cluster is up");
    let db = TestDb::new();
    let stream = TestStream::on(cluster.urls().split(',').next().unwrap().to_string());
    let env = [("MASTER_API_KEY", MASTER), ("NATS_URL", &cluster.urls()), ("NATS_STREAM_REPLICAS", "3")];
    let server = ServerProcess::start_with(&db, &stream, &env);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let admin = |path: &str| http.post(format!("{}{path}", server.base)).header("X-Master-Key", MASTER);
    let (status, tenant) = send(admin("/admin/tenants").json(&json!({"name": "Before"}))).await;
    assert_eq!(status, 201, "{tenant}");
    let js = async_nats::jetstream::new(
        async_nats::connect(cluster.urls().split(',').nth(1).unwrap()).await.unwrap(),
    );
    let replicas = js.get_stream(&stream.stream).await.unwrap().info().await.unwrap().config.num_replicas;
    assert_eq!(replicas, 3, "the events stream has three replicas");

    let (status, gateway) =
        send(admin("/admin/platform-keys").json(&json!({"name": "gw", "role": "gateway"}))).await;
    assert_eq!(status, 201, "{gateway}");
    let gateway = gateway["api_key"].as_str().unwrap().to_string();
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_string();

    // The node the instance most likely talks to (the first of the list) dies.
    cluster.kill(0);
    let created = eventually(Duration::from_secs(30), || async {
        send(admin("/admin/tenants").json(&json!({"name": "After"}))).await.0 == 201
    })
    .await;
    assert!(created, "commands go on without the node");
    let usage = json!({"records": [{"id": "r-1", "tenant_id": tenant_id, "userId": "u1", "api_calls": 1,
        "timestamp": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()}]});
    let reported = eventually(Duration::from_secs(30), || async {
        send(http.post(format!("{}/v1/usage", server.base)).bearer_auth(&gateway).json(&usage)).await.0 == 200
    })
    .await;
    assert!(reported, "usage reports are taken without the node");
    let survivor = cluster.ports[1];
    let relayed = eventually(Duration::from_secs(30), || async {
        let Ok(client) = async_nats::connect(format!("nats://127.0.0.1:{survivor}")).await else {
            return false;
        };
        let js = async_nats::jetstream::new(client);
        let Ok(mut s) = js.get_stream(&stream.stream).await else { return false };
        let Ok(info) = s.info().await else { return false };
        let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
            .fetch_one(&db.pool().await)
            .await
            .unwrap_or(-1);
        info.state.messages as i64 >= head
    })
    .await;
    assert!(relayed, "every event reached the replicated stream without the node");
    drop(server);
}

fn cluster_url(cluster: &Cluster) -> String {
    format!("nats://127.0.0.1:{}", cluster.ports[0])
}
