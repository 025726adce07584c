//! A real three-node JetStream cluster on loopback: the hub is given all
//! three URLs and creates its stream with three replicas. Under command
//! load, the stream's leader is killed with SIGKILL, then the node the hub
//! is connected to; both come back. Commands are acknowledged while a node
//! is down, none acknowledged is lost, and the stream holds every stored
//! event exactly once, per aggregate in order (the reliability suite's
//! agreement check).

use std::time::{Duration, Instant};

use hub_tests::jetstream::context;
use hub_tests::reliability::{hub_id, seed, wait_for_agreement, HubProcess, HubSpec, Load, Rng};
use hub_tests::{wait_until, NatsCluster, TestDb};

const CLIENTS: usize = 3;
const PROGRESS: Duration = Duration::from_secs(60);
const CATCH_UP: Duration = Duration::from_secs(90);

/// The stream's leader, as JetStream names it (`n0`, ...), once elected.
async fn leader(nats_url: &str, stream: &str) -> Option<usize> {
    let js = context(nats_url).await;
    let mut handle = js.get_stream(stream).await.ok()?;
    let info = handle.info().await.ok()?;
    NatsCluster::index_of(info.cluster.as_ref()?.leader.as_ref()?)
}

/// Whether every replica of the stream is current again.
async fn replicas_current(nats_url: &str, stream: &str) -> Option<bool> {
    let js = context(nats_url).await;
    let mut handle = js.get_stream(stream).await.ok()?;
    let info = handle.info().await.ok()?;
    let cluster = info.cluster.as_ref()?;
    Some(
        cluster.leader.is_some()
            && cluster.replicas.len() == 2
            && cluster.replicas.iter().all(|r| r.current),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_its_leader_and_the_hubs_node_and_nothing_is_lost() {
    let mut rng = Rng::new(seed());
    let mut cluster = NatsCluster::start(3).await;
    let db = TestDb::create().await;
    let mut spec = HubSpec::new(db.url(), &cluster.urls(), &hub_id("cluster"));
    spec.env.push(("HUB_NATS_REPLICAS".into(), "3".into()));
    let stream = spec.stream();
    let hub = HubProcess::start(spec).await;
    let load = Load::start(vec![hub.endpoint()], CLIENTS, "cluster", &mut rng);
    load.wait_for_acks(20, PROGRESS).await;

    // The hub made its stream with three replicas, on the cluster.
    let any = cluster.nodes[0].url();
    let first_leader = wait_until("the stream to have a leader", PROGRESS, || async {
        leader(&any, &stream).await
    })
    .await;
    {
        let js = context(&any).await;
        let mut handle = js.get_stream(&stream).await.expect("the stream");
        let config = handle.info().await.expect("stream info").config.clone();
        assert_eq!(config.num_replicas, 3);
    }
    wait_until("every replica to be current", PROGRESS, || async {
        (replicas_current(&any, &stream).await == Some(true)).then_some(())
    })
    .await;

    // Kill the stream's leader: commands go on being acknowledged.
    cluster.nodes[first_leader].stop();
    let down = Instant::now();
    let alive = cluster.nodes[(first_leader + 1) % 3].url();
    load.wait_for_acks(20, PROGRESS).await;
    let new_leader = wait_until("a new leader", PROGRESS, || async {
        leader(&alive, &stream).await.filter(|l| *l != first_leader)
    })
    .await;
    let acked_without_leader = load
        .snapshot()
        .acked()
        .filter(|attempt| attempt.within(down, Instant::now()))
        .count();
    cluster.nodes[first_leader].restart().await;
    wait_until("every replica to be current again", PROGRESS, || async {
        (replicas_current(&alive, &stream).await == Some(true)).then_some(())
    })
    .await;

    // Kill the node the hub is connected to.
    let connected = wait_until("the hub to name its NATS server", PROGRESS, || async {
        let health = hub.health().await?;
        NatsCluster::index_of(health["nats"]["server"].as_str()?)
    })
    .await;
    cluster.nodes[connected].stop();
    let down = Instant::now();
    load.wait_for_acks(20, PROGRESS).await;
    wait_until("the hub to reconnect to another node", PROGRESS, || async {
        let health = hub.health().await?;
        let now = NatsCluster::index_of(health["nats"]["server"].as_str()?)?;
        (health["nats"]["connected"] == true && now != connected).then_some(())
    })
    .await;
    load.wait_for_acks(20, PROGRESS).await;
    let acked_without_its_node = load
        .snapshot()
        .acked()
        .filter(|attempt| attempt.within(down, Instant::now()))
        .count();
    cluster.nodes[connected].restart().await;
    load.wait_for_acks(10, PROGRESS).await;
    let ledger = load.finish().await;

    let alive = cluster.nodes[(connected + 1) % 3].url();
    let pool = db.pool().await;
    let agreement = wait_for_agreement(&pool, &alive, &stream, &ledger, CATCH_UP).await;
    println!(
        "nats cluster: leader n{first_leader} killed (new leader n{new_leader}), {acked_without_leader} commands acknowledged meanwhile; \
         the hub's node n{connected} killed, {acked_without_its_node} acknowledged meanwhile; {} | {} acknowledged in all",
        agreement.summary(),
        ledger.acked_count()
    );
    assert!(
        acked_without_leader > 0,
        "commands were acknowledged without the leader"
    );
    assert!(
        acked_without_its_node > 0,
        "commands were acknowledged without the hub's node"
    );
    agreement.assert_holds("nats-cluster");
    assert!(
        ledger.server_errors().is_empty(),
        "{:?}",
        ledger.server_errors()
    );
    hub_tests::hub::delete_stream(&alive, &stream).await;
}
