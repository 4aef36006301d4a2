//! The group as an operator sees it: the members the coordinator knows, the
//! shards assigned to each (decoded from the assignment the group leader
//! sent them), and the files waiting per shard (listed on the source with no
//! done checkpoint). Read-only: a viewer joins nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use super::{shard, GroupError};
use crate::sink::{CheckpointStore, KafkaConfig};

/// What the group coordinator says of the group.
#[derive(Debug, Serialize)]
pub struct GroupDescription {
    pub group: String,
    /// Stable, PreparingRebalance, CompletingRebalance, Empty, Dead.
    pub state: String,
    /// The assignor in use (cooperative-sticky).
    pub protocol: String,
    pub members: Vec<Member>,
}

#[derive(Debug, Serialize)]
pub struct Member {
    /// `<host name>-<pid>` of the instance.
    pub client_id: String,
    /// Its address as the coordinator sees it.
    pub host: String,
    pub member_id: String,
    /// Its client id names the host this view runs on.
    pub this_host: bool,
    /// It is the member the ledger of this view says it joined as: the
    /// instance whose ledger this is.
    pub this_instance: bool,
    /// The assignment topic's partitions assigned to it: its shards.
    pub shards: Vec<u32>,
    /// Files waiting in its shards; None when the source could not be listed.
    pub files_waiting: Option<u64>,
}

/// Asks the coordinator for `group`'s members and their shards of `topic`;
/// `this_member` is the client id the ledger read beside it recorded.
pub fn describe(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    this_member: Option<&str>,
    timeout: Duration,
) -> Result<GroupDescription, GroupError> {
    let client: BaseConsumer = kafka.client_config().create().map_err(GroupError::Kafka)?;
    let list = client
        .fetch_group_list(Some(group), timeout)
        .map_err(GroupError::Kafka)?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        return Err(GroupError::Unknown(group.to_string()));
    };
    let here = super::hostname().map(|h| format!("{h}-"));
    let mut members = Vec::new();
    for m in info.members() {
        let shards = match m.assignment() {
            Some(bytes) if !bytes.is_empty() => {
                decode_assignment(bytes, topic).map_err(|at| GroupError::Assignment {
                    member: m.client_id().to_string(),
                    at,
                })?
            }
            _ => Vec::new(),
        };
        members.push(Member {
            client_id: m.client_id().to_string(),
            host: m.client_host().trim_start_matches('/').to_string(),
            member_id: m.id().to_string(),
            this_host: here.as_deref().is_some_and(|h| m.client_id().starts_with(h)),
            this_instance: this_member == Some(m.client_id()),
            shards,
            files_waiting: None,
        });
    }
    members.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok(GroupDescription {
        group: group.to_string(),
        state: info.state().to_string(),
        protocol: info.protocol().to_string(),
        members,
    })
}

/// The partitions of `topic` in a consumer protocol assignment (any version:
/// v1+ only append fields after the ones read here). Big-endian: int16
/// version, then an int32-counted array of (int16-length topic name,
/// int32-counted array of int32 partitions). Err: the byte offset where the
/// bytes stop making sense.
pub fn decode_assignment(bytes: &[u8], topic: &str) -> Result<Vec<u32>, usize> {
    let mut r = Reader { bytes, at: 0 };
    r.take(2)?;
    let mut shards = Vec::new();
    for _ in 0..r.count()? {
        let len = usize::try_from(i16::from_be_bytes(r.array()?)).map_err(|_| r.at)?;
        let name = r.take(len)?;
        for _ in 0..r.count()? {
            let p = i32::from_be_bytes(r.array()?);
            if name == topic.as_bytes() {
                shards.push(u32::try_from(p).map_err(|_| r.at)?);
            }
        }
    }
    shards.sort_unstable();
    Ok(shards)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], usize> {
        let part = self.bytes.get(self.at..self.at + n).ok_or(self.at)?;
        self.at += n;
        Ok(part)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], usize> {
        let at = self.at;
        self.take(N)?.try_into().map_err(|_| at)
    }

    /// An array's element count; negative (null) counts as empty.
    fn count(&mut self) -> Result<usize, usize> {
        Ok(usize::try_from(i32::from_be_bytes(self.array()?)).unwrap_or(0))
    }
}

/// The whole picture: members, their shards and lag, and what nobody owns.
#[derive(Debug, Serialize)]
pub struct GroupView {
    #[serde(flatten)]
    pub membership: GroupDescription,
    pub shard_count: u32,
    /// Shards no member holds (a rebalance in progress, or no member at all).
    pub unassigned: Vec<u32>,
    /// Files waiting in all shards; None when the source could not be listed.
    pub files_waiting: Option<u64>,
    /// Every shard with files waiting, and who owns it.
    pub lagging_shards: Vec<LaggingShard>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LaggingShard {
    pub shard: u32,
    /// The owning member's client id.
    pub owner: Option<String>,
    #[serde(flatten)]
    pub lag: ShardLag,
}

impl GroupView {
    /// Puts `lag` (None: the source was not listed) beside the membership.
    pub fn new(mut membership: GroupDescription, shard_count: u32, lag: Option<BTreeMap<u32, ShardLag>>) -> Self {
        let mut owner: BTreeMap<u32, &str> = BTreeMap::new();
        for m in &membership.members {
            for s in &m.shards {
                owner.insert(*s, &m.client_id);
            }
        }
        let unassigned = (0..shard_count).filter(|s| !owner.contains_key(s)).collect();
        let lagging_shards: Vec<LaggingShard> = lag
            .iter()
            .flatten()
            .map(|(s, l)| LaggingShard {
                shard: *s,
                owner: owner.get(s).map(|o| o.to_string()),
                lag: ShardLag {
                    files_waiting: l.files_waiting,
                    first_waiting: l.first_waiting.clone(),
                },
            })
            .collect();
        let files_waiting = lag.as_ref().map(|l| l.values().map(|s| s.files_waiting).sum());
        for m in &mut membership.members {
            m.files_waiting = lag
                .as_ref()
                .map(|l| m.shards.iter().filter_map(|s| l.get(s)).map(|s| s.files_waiting).sum());
        }
        GroupView {
            membership,
            shard_count,
            unassigned,
            files_waiting,
            lagging_shards,
        }
    }
}

/// Files waiting in one shard: listed, and not done by the checkpoint topic.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ShardLag {
    pub files_waiting: u64,
    /// The first of them in name order (the oldest, by the naming convention).
    pub first_waiting: Option<String>,
}

/// The lag of every shard that has files waiting: the `listed` names whose
/// checkpoint is missing or not done, by shard of `shard_count`.
pub fn lag_per_shard<'a>(
    listed: impl IntoIterator<Item = &'a str>,
    checkpoints: &CheckpointStore,
    shard_count: u32,
) -> BTreeMap<u32, ShardLag> {
    let mut lag: BTreeMap<u32, ShardLag> = BTreeMap::new();
    for name in listed {
        if checkpoints.get(name).is_some_and(|c| c.done) {
            continue;
        }
        let entry = lag.entry(shard::shard_of(name, shard_count)).or_default();
        entry.files_waiting += 1;
        if entry.first_waiting.as_deref().is_none_or(|f| name < f) {
            entry.first_waiting = Some(name.to_string());
        }
    }
    lag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Checkpoint;

    fn assignment(version: i16, topics: &[(&str, &[i32])], user_data: &[u8]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (name, parts) in topics {
            b.extend((name.len() as i16).to_be_bytes());
            b.extend(name.as_bytes());
            b.extend((parts.len() as i32).to_be_bytes());
            parts.iter().for_each(|p| b.extend(p.to_be_bytes()));
        }
        b.extend((user_data.len() as i32).to_be_bytes());
        b.extend(user_data);
        b
    }

    #[test]
    fn an_assignment_decodes_to_the_shards_of_the_assignment_topic_only() {
        let bytes = assignment(3, &[("other", &[0, 1]), ("shards", &[9, 2, 5])], b"sticky");
        assert_eq!(decode_assignment(&bytes, "shards"), Ok(vec![2, 5, 9]));
        assert_eq!(decode_assignment(&assignment(0, &[], b""), "shards"), Ok(vec![]));
    }

    #[test]
    fn a_truncated_assignment_names_where_it_stops() {
        let bytes = assignment(1, &[("shards", &[1, 2])], b"");
        // Cut inside the second partition: version 2 + count 4 + name 2+6 + count 4 + one partition 4.
        assert_eq!(decode_assignment(&bytes[..23], "shards"), Err(22));
    }

    fn member(id: &str, shards: &[u32]) -> Member {
        Member {
            client_id: id.into(),
            host: "127.0.0.1".into(),
            member_id: format!("{id}-m"),
            this_host: false,
            this_instance: false,
            shards: shards.to_vec(),
            files_waiting: None,
        }
    }

    #[test]
    fn the_view_names_each_lagging_shards_owner_and_the_shards_nobody_holds() {
        let membership = GroupDescription {
            group: "g".into(),
            state: "Stable".into(),
            protocol: "cooperative-sticky".into(),
            members: vec![member("a-1", &[0, 2]), member("b-2", &[1])],
        };
        let lag: BTreeMap<u32, ShardLag> = [(2, 3), (3, 1)]
            .into_iter()
            .map(|(s, n)| {
                (
                    s,
                    ShardLag {
                        files_waiting: n,
                        first_waiting: Some(format!("f{s}")),
                    },
                )
            })
            .collect();
        let view = GroupView::new(membership, 4, Some(lag));
        assert_eq!(view.unassigned, vec![3]);
        assert_eq!(view.files_waiting, Some(4));
        let waiting: Vec<_> = view.membership.members.iter().map(|m| m.files_waiting).collect();
        assert_eq!(waiting, vec![Some(3), Some(0)]);
        let owners: Vec<_> = view
            .lagging_shards
            .iter()
            .map(|l| (l.shard, l.owner.as_deref()))
            .collect();
        assert_eq!(owners, vec![(2, Some("a-1")), (3, None)]);

        let unlisted = GroupView::new(
            GroupDescription {
                members: vec![member("a-1", &[0])],
                ..view.membership
            },
            1,
            None,
        );
        assert_eq!(
            (unlisted.files_waiting, unlisted.membership.members[0].files_waiting),
            (None, None)
        );
    }

    #[test]
    fn lag_counts_listed_files_without_a_done_checkpoint_by_shard() {
        let mut store = CheckpointStore::default();
        let cp = |file: &str, done| Checkpoint {
            v: 1,
            file: file.into(),
            sha256: String::new(),
            version: 1,
            seq: 1,
            rows_done: 1,
            valid: 1,
            invalid: 0,
            done,
            first_event_ms: None,
            last_event_ms: None,
            first_row: 1,
            bytes: None,
        };
        store.record(cp("a.csv", true));
        store.record(cp("b.csv", false));
        let lag = lag_per_shard(["b.csv", "a.csv", "c.csv"], &store, 1);
        assert_eq!(
            lag.get(&0),
            Some(&ShardLag {
                files_waiting: 2,
                first_waiting: Some("b.csv".into())
            }),
            "a done file does not wait; a half-done one and an unseen one do"
        );
        let spread = lag_per_shard(["x1", "x2", "x3", "x4", "x5", "x6"], &CheckpointStore::default(), 4);
        assert_eq!(spread.values().map(|l| l.files_waiting).sum::<u64>(), 6);
        for (s, l) in &spread {
            assert_eq!(shard::shard_of(l.first_waiting.as_deref().unwrap(), 4), *s);
        }
    }
}
