//! Pipelines on a Redis Cluster: one pipeline per node serving the commands' keys, rather than
//! one round trip per command.
//!
//! The client refuses a pipeline whose keys span slots, and a batch of thirty tickers spans
//! thirty. A node checks each command of a pipeline on its own, though, so commands for
//! different slots of one node may share one. The commands are therefore grouped by the node
//! that a map read from `CLUSTER SLOTS` says serves their slot, and each group is sent as one
//! pipeline routed by its first command's slot. When slots have moved since the map was read,
//! a node answers the commands it no longer serves with MOVED or ASK: the map is then
//! forgotten (read again by the next pipeline), and each such command is sent again on its
//! own, routed by the client, which follows the redirection.
//!
//! A group goes straight to its node on the connection's own link to it ([`NodeLinks`]),
//! and through the cluster client only when that link fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use foldhash::fast::RandomState;
use futures::future::try_join_all;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{
    Arg, AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisResult, ServerErrorKind,
    Value,
};

use super::topology::NodeAccess;

/// One range of a `CLUSTER SLOTS` answer: its first and last slot and its primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlotRange {
    pub first: u16,
    pub last: u16,
    pub host: String,
    pub port: u16,
}

/// The node serving each slot, by its index among the distinct nodes. Keyed by the client's
/// own `Slot`, which computes a key's slot but does not tell its number.
type NodeBySlot = HashMap<Slot, u16, RandomState>;

/// The nodes of a `CLUSTER SLOTS` answer: which serves each slot, and their addresses.
#[derive(Debug, Default)]
struct Nodes {
    by_slot: NodeBySlot,
    addresses: Vec<(String, u16)>,
}

/// Which node serves which slots, as last read, shared by every connection to the cluster.
#[derive(Debug, Default)]
pub(super) struct SlotMap {
    /// `None` until read, and again once slots were found moved.
    nodes: RwLock<Option<Arc<Nodes>>>,
}

/// A connection's own multiplexed connections to the nodes, opened on first use: a group of
/// commands sent on one goes straight to its node, where through the cluster client it would
/// cross the client's routing task too (two hand-offs between tasks instead of one, which a
/// profile of Cluster hits showed). Any failure on one sends the group through the cluster
/// client instead, which follows failovers and redirections.
pub(super) struct NodeLinks {
    access: Arc<NodeAccess>,
    config: AsyncConnectionConfig,
    open: Mutex<HashMap<(String, u16), MultiplexedConnection>>,
}

impl NodeLinks {
    pub(super) fn new(access: Arc<NodeAccess>, config: AsyncConnectionConfig) -> Self {
        Self {
            access,
            config,
            open: Mutex::default(),
        }
    }

    /// Sends `pipeline` on this connection's own link to `address`, opened first if need be.
    async fn send(&self, address: &(String, u16), pipeline: &Pipeline) -> RedisResult<Vec<Value>> {
        let open = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(address)
            .cloned();
        let mut link = match open {
            Some(link) => link,
            None => {
                let link = self
                    .access
                    .client(&address.0, address.1)?
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?;
                self.open
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(address.clone(), link.clone());
                link
            }
        };
        let sent = link.req_packed_commands(pipeline, 0, pipeline.len()).await;
        if sent.is_err() {
            self.open
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(address);
        }
        sent
    }
}

/// The ranges of a `CLUSTER SLOTS` answer: each entry is
/// `[first slot, last slot, [host, port, id, …], replicas…]`.
///
/// # Errors
/// The client's, for an answer of another shape.
fn slot_ranges_in(slots: Value) -> RedisResult<Vec<SlotRange>> {
    let entries: Vec<Vec<Value>> = redis::from_redis_value(slots)?;
    let mut ranges = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut fields = entry.into_iter();
        let (Some(first), Some(last), Some(node)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let node: Vec<Value> = redis::from_redis_value(node)?;
        let mut address = node.into_iter();
        if let (Some(host), Some(port)) = (address.next(), address.next()) {
            ranges.push(SlotRange {
                first: redis::from_redis_value(first)?,
                last: redis::from_redis_value(last)?,
                host: redis::from_redis_value(host)?,
                port: redis::from_redis_value(port)?,
            });
        }
    }
    Ok(ranges)
}

impl SlotMap {
    /// Sends `count` commands of `pipeline` from `offset` as one pipeline per node; the
    /// answers come back in the commands' order, a command's error among them as a value.
    ///
    /// # Errors
    /// The client's, when a node the commands need cannot be reached.
    pub(super) async fn send(
        &self,
        conn: &ClusterConnection,
        direct: &NodeLinks,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let commands: Vec<&Cmd> = pipeline.cmd_iter().skip(offset).take(count).collect();
        // Without a map (no node answered `CLUSTER SLOTS` just now) every command goes alone,
        // routed by the client, as it would without grouping.
        let nodes = self.nodes(conn).await.unwrap_or_default();
        let mut groups: Vec<(Option<u16>, Vec<usize>)> = Vec::new();
        for (index, command) in commands.iter().enumerate() {
            let node = slot_of(command).and_then(|slot| nodes.by_slot.get(&slot).copied());
            match groups
                .iter_mut()
                .find(|(n, _)| node.is_some() && *n == node)
            {
                Some((_, members)) => members.push(index),
                None => groups.push((node, vec![index])),
            }
        }
        // Each answer, or `None` for a command to send again on its own: one its node
        // redirected, or one of a group refused as a whole for being sent where it is no
        // longer served.
        let sent = groups.iter().map(|(node, members)| {
            let commands = &commands;
            let address = node.and_then(|node| nodes.addresses.get(usize::from(node)));
            async move {
                let answers: Vec<Option<Value>> =
                    match send_group(conn, direct, address, commands, members).await {
                        Ok(answers) => answers
                            .into_iter()
                            .map(|answer| (!is_redirection(&answer)).then_some(answer))
                            .collect(),
                        Err(e) if is_redirection_error(&e) => vec![None; members.len()],
                        Err(e) => return Err(e),
                    };
                Ok(members.iter().copied().zip(answers).collect::<Vec<_>>())
            }
        });
        let mut answers: Vec<Option<Value>> = vec![None; commands.len()];
        for (index, answer) in try_join_all(sent).await?.into_iter().flatten() {
            answers[index] = answer;
        }
        let redirected: Vec<usize> = (0..commands.len())
            .filter(|index| answers[*index].is_none())
            .collect();
        if !redirected.is_empty() {
            self.forget();
            let again = try_join_all(redirected.iter().map(|&index| {
                let mut conn = conn.clone();
                let command = commands[index];
                async move { conn.req_packed_command(command).await }
            }))
            .await?;
            for (index, answer) in redirected.into_iter().zip(again) {
                answers[index] = Some(answer);
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// The map, read from the cluster when there is none.
    async fn nodes(&self, conn: &ClusterConnection) -> RedisResult<Arc<Nodes>> {
        if let Some(nodes) = self
            .nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(nodes);
        }
        let mut slots = redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        let answer = conn
            .clone()
            .route_command(
                slots,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let nodes = Arc::new(nodes_of(slot_ranges_in(answer)?));
        *self.nodes.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&nodes));
        Ok(nodes)
    }

    fn forget(&self) {
        *self.nodes.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The primaries of a `CLUSTER SLOTS` answer, each once, in its order.
///
/// # Errors
/// The client's, for an answer of another shape.
pub(super) fn primaries_in(slots: Value) -> RedisResult<Vec<(String, u16)>> {
    let mut primaries = Vec::new();
    for range in slot_ranges_in(slots)? {
        index_among(&mut primaries, (range.host, range.port));
    }
    Ok(primaries)
}

/// The index of `node` in `nodes`, where it is added unless it is there already.
fn index_among(nodes: &mut Vec<(String, u16)>, node: (String, u16)) -> usize {
    nodes.iter().position(|n| *n == node).unwrap_or_else(|| {
        nodes.push(node);
        nodes.len() - 1
    })
}

/// Every slot of `ranges` with the index of its node among the distinct nodes.
fn nodes_of(ranges: Vec<SlotRange>) -> Nodes {
    let mut nodes = Nodes::default();
    for range in ranges {
        let index = index_among(&mut nodes.addresses, (range.host, range.port));
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        for slot in (range.first..=range.last).filter_map(Slot::new) {
            nodes.by_slot.insert(slot, index);
        }
    }
    nodes
}

/// The slot of the one key of a command the cache pipelines (`GET`, `PTTL`, `SET`, `UNLINK`:
/// the first argument; `EVAL`: the first key after the key count); `None` for any other
/// command, which is then sent on its own, routed by the client.
fn slot_of(command: &Cmd) -> Option<Slot> {
    let mut args = command.args_iter().map(|arg| match arg {
        Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()??;
    let key = if name.eq_ignore_ascii_case(b"EVAL") {
        let _script = args.next()?;
        let key_count = args.next()??;
        if key_count == b"0" {
            return None;
        }
        args.next()??
    } else if [&b"GET"[..], b"PTTL", b"SET", b"UNLINK"]
        .iter()
        .any(|known| name.eq_ignore_ascii_case(known))
    {
        args.next()??
    } else {
        return None;
    };
    Some(Slot::for_key(key))
}

/// Sends the commands at `members` as one pipeline: straight to `address` (the node the map
/// names) when there is one and it answers, else through the cluster client, routed by the
/// first command's slot (or as the client routes a lone command without one).
async fn send_group(
    conn: &ClusterConnection,
    direct: &NodeLinks,
    address: Option<&(String, u16)>,
    commands: &[&Cmd],
    members: &[usize],
) -> RedisResult<Vec<Value>> {
    let mut conn = conn.clone();
    let first = commands[members[0]];
    let Some(slot) = slot_of(first) else {
        return Ok(vec![conn.req_packed_command(first).await?]);
    };
    let mut pipeline = redis::pipe();
    for &member in members {
        pipeline.add_command(commands[member].clone());
    }
    if let Some(address) = address {
        if let Ok(answers) = direct.send(address, &pipeline).await {
            return Ok(answers);
        }
    }
    let route = SingleNodeRoutingInfo::SpecificNode(Route::with_slot(slot, SlotAddr::Master));
    conn.route_pipeline(pipeline, 0, members.len(), route).await
}

/// Whether a node answered that it does not serve the command's slot (now).
fn is_redirection(answer: &Value) -> bool {
    matches!(answer, Value::ServerError(error)
        if matches!(error.kind(), Some(ServerErrorKind::Moved | ServerErrorKind::Ask)))
}

fn is_redirection_error(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[(u16, u16, &str)]) -> Vec<SlotRange> {
        list.iter()
            .map(|(first, last, host)| SlotRange {
                first: *first,
                last: *last,
                host: (*host).to_owned(),
                port: 7000,
            })
            .collect()
    }

    #[test]
    fn a_slot_is_served_by_the_node_of_its_range_and_a_gap_by_none() {
        let nodes = nodes_of(ranges(&[
            (10_923, 16_383, "c"),
            (0, 5_460, "a"),
            (5_461, 10_000, "b"),
            (10_001, 10_922, "a"),
        ]));
        let node = |slot| {
            nodes
                .by_slot
                .get(&Slot::new(slot).expect("a slot"))
                .copied()
        };
        assert_eq!(nodes.by_slot.len(), 16_384);
        assert_eq!(
            nodes.addresses.len(),
            3,
            "two ranges of one node, one address"
        );
        assert_eq!(node(0), node(5_460));
        assert_eq!(node(0), node(10_500), "two ranges of one node");
        assert_ne!(node(0), node(5_461));
        assert_ne!(node(5_461), node(16_383));
        let gapped = nodes_of(ranges(&[(0, 99, "a"), (200, 16_383, "b")]));
        assert_eq!(gapped.by_slot.get(&Slot::new(150).expect("a slot")), None);
        assert!(nodes_of(Vec::new()).by_slot.is_empty());
    }

    #[test]
    fn a_command_s_slot_is_its_key_s() {
        let mut get = redis::cmd("GET");
        get.arg("stockpile:stocks:detail:AAPL");
        assert_eq!(
            slot_of(&get),
            Some(Slot::for_key("stockpile:stocks:detail:AAPL"))
        );
        let mut eval = redis::cmd("EVAL");
        eval.arg("return 1").arg(1).arg("gen:market").arg("token");
        assert_eq!(slot_of(&eval), Some(Slot::for_key("gen:market")));
        let mut keyless_eval = redis::cmd("EVAL");
        keyless_eval.arg("return 1").arg(0);
        assert_eq!(slot_of(&keyless_eval), None);
        let mut publish = redis::cmd("PUBLISH");
        publish.arg("channel").arg("message");
        assert_eq!(slot_of(&publish), None, "not a command the cache pipelines");
        assert_eq!(slot_of(&redis::cmd("PING")), None);
    }

    #[test]
    fn the_ranges_of_a_cluster_slots_answer_are_read_with_their_primaries() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let answer = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5_460),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            Value::Array(vec![
                Value::Int(5_461),
                Value::Int(16_383),
                node("10.0.0.2", 7001),
            ]),
        ]);
        assert_eq!(
            slot_ranges_in(answer).expect("read"),
            vec![
                SlotRange {
                    first: 0,
                    last: 5_460,
                    host: "10.0.0.1".into(),
                    port: 7000
                },
                SlotRange {
                    first: 5_461,
                    last: 16_383,
                    host: "10.0.0.2".into(),
                    port: 7001
                },
            ]
        );
    }
}
