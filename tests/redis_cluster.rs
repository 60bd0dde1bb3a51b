//! The store on a real Redis Cluster: three `redis-server --cluster-enabled yes` nodes
//! started here, joined with `redis-cli --cluster create`. Every decision's keys share
//! a hash tag, so multi-quota decisions work on whichever node owns the client's slot.
#![cfg(feature = "redis")]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use tower_ratelimit::store::redis::RedisStore;
use tower_ratelimit::store::{Check, Store, Tier};
use tower_ratelimit::{Quota, Quotas};

fn cluster_node() -> support::RedisServer {
    let bus = support::free_port().to_string();
    support::RedisServer::start_with(
        support::free_port(),
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
            "--cluster-port",
            &bus,
        ],
    )
}

fn cluster_ok(node: &support::RedisServer) -> bool {
    let info: Result<String, _> = redis::cmd("CLUSTER").arg("INFO").query(&mut node.client());
    info.is_ok_and(|i| i.contains("cluster_state:ok"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_a_three_node_cluster() {
    if !support::redis_installed("works_on_a_three_node_cluster") {
        return;
    }
    let nodes: Vec<_> = (0..3).map(|_| cluster_node()).collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run redis-cli --cluster create");
    assert!(created.success(), "redis-cli --cluster create failed");
    let mut ready = false;
    for _ in 0..200 {
        if nodes.iter().all(cluster_ok) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the cluster reached cluster_state:ok");

    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    // Control: a script over two keys without a common hash tag is refused.
    let client = redis::cluster::ClusterClient::new(urls.clone()).expect("cluster client");
    let mut raw = client
        .get_async_connection()
        .await
        .expect("cluster connection");
    let crossslot: Result<i64, _> = redis::cmd("EVAL")
        .arg("return 1")
        .arg(2)
        .arg("rl:a")
        .arg("rl:b")
        .query_async(&mut raw)
        .await;
    assert!(
        crossslot.is_err(),
        "keys in two slots cannot share a script"
    );

    let quotas = Quotas::new([
        Quota::per_hour(3).expect("valid").named("burst"),
        Quota::new(100, Duration::from_secs(86_400)).expect("valid"),
    ])
    .expect("valid set");
    let store = RedisStore::builder(quotas)
        .timeout(Duration::from_secs(2))
        .connect_cluster(&urls)
        .await
        .expect("connect to the cluster");
    for c in 0..60 {
        let key = format!("client-{c}");
        let mut admitted = 0;
        for _ in 0..5 {
            let r = match store.check(&key, Tier(0), 1) {
                Check::Ready(r) => r,
                Check::Pending(f) => f.await,
            };
            admitted += u32::from(r.expect("the cluster decided").is_allowed());
        }
        assert_eq!(admitted, 3, "{key}: the burst of 3, then denials");
    }
    // The clients' keys landed on every node, so each node ran the script (loading it
    // on NOSCRIPT) and wrote both quotas' keys in one slot.
    for n in &nodes {
        let keys: u64 = redis::cmd("DBSIZE").query(&mut n.client()).expect("DBSIZE");
        assert!(
            keys >= 2 && keys.is_multiple_of(2),
            "node {} holds {keys} keys",
            n.port()
        );
        assert!(support::command_calls(&mut n.client(), &["eval"]) >= 1);
    }
    assert_eq!(store.stats().failures, 0);
}
