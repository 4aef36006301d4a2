//! Which shard a file belongs to: a pure function of its name and the shard
//! count, identical in every instance and every version, so that all members
//! of a group agree on who owns a file without asking each other.
//!
//! The hash is Kafka's murmur2 (the Java client's default partitioner, also
//! librdkafka's `murmur2` partitioner): a file's shard is the partition its
//! name would land on as a key in a topic of `shards` partitions, which any
//! Kafka tool can reproduce.

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), seed
/// 0x9747b28c. Changing it would move every file to another shard while
/// instances of the old and the new version run side by side.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for b in &mut blocks {
        let mut k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The shard of `file_name` among `shards` (> 0): Kafka's
/// `toPositive(murmur2(name)) % shards`.
pub fn shard_of(file_name: &str, shards: u32) -> u32 {
    (murmur2(file_name.as_bytes()) & 0x7fff_ffff) % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Vectors of librdkafka's unit test, computed with Kafka's Java client.
        let unaligned = "PreAmbleWillBeRemoved,ThePrePartThatIs";
        let cases: &[(&str, u32)] = &[
            ("kafka", 0xd067_cf64),
            ("giberish123456789", 0x8f55_2b0c),
            ("1234", 0x9fc9_7b14),
            ("234", 0xe7c0_09ca),
            ("34", 0x8739_30da),
            ("4", 0x5a4b_5ca1),
            (unaligned, 0x7842_4f1c),
            (&unaligned[1..], 0x4a62_b377),
            (&unaligned[2..], 0xe0e4_e09e),
            (&unaligned[3..], 0x62b8_b43f),
            ("", 0x106e_08d9),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input.as_bytes()), *want, "murmur2({input:?})");
        }
    }

    #[test]
    fn shards_are_stable_and_spread() {
        // Pinned: a change here moves files between the instances of a
        // running group during a rolling upgrade.
        assert_eq!(
            shard_of("cdr_data_20240101_000000.csv", 64),
            shard_of("cdr_data_20240101_000000.csv", 64)
        );
        assert_eq!(shard_of("kafka", 64), (0xd067_cf64u32 & 0x7fff_ffff) % 64);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..2000 {
            let s = shard_of(&format!("cdr_voice_20240101_{i:06}.csv"), 64);
            assert!(s < 64);
            seen.insert(s);
        }
        assert_eq!(seen.len(), 64, "2000 names reach every one of 64 shards");
    }
}
