//! `grpc_get`: `google.longrunning.Operations/GetOperation` over h2c, closed loop, against
//! a tonic ceiling (`ceiling_servers`): `opsd-bench ceiling-grpc`, its own process on the
//! server core, whose generated service answers every call with the very message opsd
//! answered (same bytes), served by hyper's HTTP/2 like opsd. The ratio isolates what
//! opsd does beyond gRPC (authentication, limits, the read cache or the store, the
//! conversion, metrics).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use opsd_grpc_proto::google::longrunning::operations_client::OperationsClient;
use opsd_grpc_proto::google::longrunning::{GetOperationRequest, Operation};
use prost::Message;
use tonic::transport::Channel;
use tonic::{Request, Response};

use crate::ctx::{Ctx, ROUNDS, round_of};
use crate::loadgen::{Limits, Stats};
use crate::outcome::{Outcome, r3};
use crate::server::Server;

/// Calls in flight at once, as get_by_id's connections.
const IN_FLIGHT: usize = 32;
/// HTTP/2 connections they share (a gRPC client multiplexes calls on few connections).
const CONNECTIONS: usize = 4;

/// `grpc_get`: random existing operations. Target: ratio ≥ 0.6 of the tonic ceiling.
pub fn grpc_get(ctx: &Ctx) -> Result<Outcome, String> {
    let (_dir, server) = ctx.fresh_opsd("grpc-get")?;
    let key = crate::loadgen::api_key().ok_or("no API key set")?;
    // The list project's operations: `all` holds them first, then the running ones.
    let listed = ctx.template.all.len() - ctx.template.running.len();
    let names: Arc<Vec<String>> = Arc::new(
        ctx.template.all[..listed]
            .iter()
            .map(|id| format!("projects/{}/operations/{id}", crate::template::LIST_PROJECT))
            .collect(),
    );
    let first = ctx.rt.block_on(get_once(server.addr, &key, &names[0]))?;
    let body_file = ctx.work.path().join("ceiling-operation.bin");
    std::fs::write(&body_file, first.encode_to_vec()).map_err(|e| e.to_string())?;
    // Every operation read once, unmeasured, as a warmed-up server would have (as
    // get_by_id does): what is measured is the service of polls, not the cache filling,
    // which on PostgreSQL costs a round trip per first read.
    ctx.rt.block_on(read_each_once(server.addr, &key, &names))?;
    let ceiling = Server::ceiling_grpc(&body_file, &ctx.pinning)?;
    let round = round_of(ctx.plan.read);
    let (mut ours, mut theirs) = (Stats::empty(), Stats::empty());
    for _ in 0..ROUNDS {
        ours =
            ours.combine(
                ctx.rt
                    .block_on(closed_loop(server.addr, &key, names.clone(), round))?,
            );
        theirs = theirs.combine(ctx.rt.block_on(closed_loop(
            ceiling.addr,
            &key,
            names.clone(),
            round,
        ))?);
    }
    ceiling.stop();
    if theirs.errors > 0 {
        return Err(format!(
            "gRPC ceiling had {} errors: {:?}",
            theirs.errors, theirs.first_error
        ));
    }
    let mut o = Outcome::from_phases(&ours, None, IN_FLIGHT);
    o.with_ceiling(theirs.ops_per_s());
    o.ratio_target(0.6, "tonic");
    o.extra("response_bytes", first.encoded_len());
    o.extra("http2_connections", CONNECTIONS);
    o.peak_rss_mb = server.stop().map(r3);
    Ok(o)
}

async fn connect(addr: SocketAddr) -> Result<Channel, String> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("gRPC connect to {addr}: {e}"))
}

fn request(key: &hyper::header::HeaderValue, name: &str) -> Request<GetOperationRequest> {
    let mut r = Request::new(GetOperationRequest { name: name.into() });
    if let Some(v) = key.to_str().ok().and_then(|k| k.parse().ok()) {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

async fn get_once(
    addr: SocketAddr,
    key: &hyper::header::HeaderValue,
    name: &str,
) -> Result<Operation, String> {
    OperationsClient::new(connect(addr).await?)
        .get_operation(request(key, name))
        .await
        .map(Response::into_inner)
        .map_err(|e| format!("GetOperation: {e}"))
}

/// Calls `GetOperation` once for every name, [`IN_FLIGHT`] callers each on a connection
/// of its own.
async fn read_each_once(
    addr: SocketAddr,
    key: &hyper::header::HeaderValue,
    names: &Arc<Vec<String>>,
) -> Result<(), String> {
    let mut tasks = Vec::new();
    for i in 0..IN_FLIGHT {
        let channel = connect(addr).await?;
        let (names, key) = (names.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = OperationsClient::new(channel);
            for name in names.iter().skip(i).step_by(IN_FLIGHT) {
                client
                    .get_operation(request(&key, name))
                    .await
                    .map_err(|e| format!("GetOperation {name}: {e}"))?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// [`IN_FLIGHT`] callers over [`CONNECTIONS`] connections, each calling again as soon as
/// it is answered, for the warm-up and then the measured time.
async fn closed_loop(
    addr: SocketAddr,
    key: &hyper::header::HeaderValue,
    names: Arc<Vec<String>>,
    limits: Limits,
) -> Result<Stats, String> {
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(connect(addr).await?);
    }
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..IN_FLIGHT {
        let mut client = OperationsClient::new(channels[i % CONNECTIONS].clone());
        let (names, key) = (names.clone(), key.clone());
        let (measuring, stop) = (measuring.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::empty();
            let mut rng = crate::loadgen::Rng::new(i as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                let name = &names[rng.below(names.len())];
                let started = Instant::now();
                let answer = client.get_operation(request(&key, name)).await;
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                match answer {
                    Ok(_) => {
                        stats.ok += 1;
                        let micros =
                            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                        stats.hist.saturating_record(micros.max(1));
                    }
                    Err(e) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            stats
        }));
    }
    tokio::time::sleep(limits.warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(limits.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut total = Stats::empty();
    for t in tasks {
        let s = t.await.map_err(|e| e.to_string())?;
        total = total.combine(s);
    }
    total.elapsed = elapsed;
    Ok(total)
}
